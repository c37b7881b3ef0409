"""Human output (rich) and JSON output. Every string passes through redact().

Progress and errors go to stderr, results to stdout, so `--json | jq` stays clean.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager

from shipshape.progress import Progress, StepHandle
from shipshape.secrets import redact
from shipshape.text import to_jsonable


class ConsoleProgress(Progress):
    """One line per step on stderr: '✓ migrate 0003_avatar_projects  12 ms'.

    Nested steps are indented under their parent. Only the outermost step shows a
    spinner, since a terminal holds one live display at a time.
    """

    def __init__(self, stream=None):
        self.console = _console(stream or sys.stderr)
        self.depth = 0

    @contextmanager
    def step(self, label: str):
        started = time.monotonic()
        handle = StepHandle()
        indent = "  " * self.depth
        self.depth += 1
        try:
            if self.depth == 1:
                with self.console.status(f"{_esc(label)} ...", spinner="dots"):
                    yield handle
            else:
                yield handle
        except BaseException:
            ms = int((time.monotonic() - started) * 1000)
            self.console.print(f"{indent}[red]✗[/red] {_esc(label)} [dim]{ms} ms[/dim]")
            raise
        finally:
            self.depth -= 1
        ms = int((time.monotonic() - started) * 1000)
        detail = f"  {_esc(redact(handle.detail))}" if handle.detail else ""
        self.console.print(f"{indent}[green]✓[/green] {_esc(label)} [dim]{ms} ms[/dim]{detail}")

    def info(self, message: str) -> None:
        self.console.print(f"{'  ' * self.depth}[dim]·[/dim] {_esc(redact(message))}")


def _console(stream):
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=True)


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def emit_json(data, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(redact(json.dumps(to_jsonable(data), indent=2, default=str)) + "\n")


def print_table(title: str, columns: list[str], rows: list[list], stream=None) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_esc(redact("" if cell is None else str(cell))) for cell in row))
    _console(stream or sys.stdout).print(table)


def print_text(text: str, stream=None) -> None:
    (stream or sys.stdout).write(redact(text) + ("" if text.endswith("\n") else "\n"))


def print_error(message: str, stream=None) -> None:
    console = _console(stream or sys.stderr)
    console.print(f"[bold red]error:[/bold red] {_esc(redact(message))}")


_SEVERITY_STYLE = {"error": "✗", "warning": "!", "info": "·"}


def print_findings(findings, stream=None) -> None:
    """One block per finding: readable at 3 a.m. in a narrow terminal, greppable by code."""
    if not findings:
        print_text("✓ no findings: the database matches the code.", stream)
        return
    lines = [f"{len(findings)} finding(s):"]
    for f in findings:
        lines.append(f"{_SEVERITY_STYLE.get(f.severity, f.severity)} {f.code}  {f.object}")
        lines.append(f"    {f.message}")
        lines.append(f"    fix: {f.fix}")
    print_text("\n".join(lines), stream)
