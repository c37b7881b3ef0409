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

    ✓ a step that succeeded, ! one that found problems, ✗ one that failed. Nested steps
    are indented under their parent. On a terminal, one live status line for the whole
    run shows the step under way; it is started once and updated, because a spinner per
    step costs a thread each (a 1000-migration run started 1000). Elsewhere (CI, pipes)
    the lines are plain text and nothing animates.
    """

    _MARKS = {"ok": ("green", "✓"), "found": ("yellow", "!"), "failed": ("red", "✗")}

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.console = _console(self.stream)
        self.terminal = self.console.is_terminal
        self.depth = 0
        self._status = None

    @contextmanager
    def step(self, label: str):
        started = time.monotonic()
        handle = StepHandle()
        indent = "  " * self.depth
        self.depth += 1
        if self.terminal:
            self._show(label)
        try:
            yield handle
        except BaseException:
            self.depth -= 1
            self._line(indent, "failed", label, started, "")
            raise
        self.depth -= 1
        self._line(indent, "found" if handle.findings else "ok", label, started, handle.detail)

    def info(self, message: str) -> None:
        self._write(f"{'  ' * self.depth}· {redact(message)}", f"{'  ' * self.depth}[dim]·[/dim] "
                    f"{_esc(redact(message))}")

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _show(self, label: str) -> None:
        if self._status is None:
            import atexit

            self._status = self.console.status("", spinner="dots")
            self._status.start()
            atexit.register(self.close)
        self._status.update(f"{_esc(label)} ...")

    def _line(self, indent: str, outcome: str, label: str, started: float, detail: str) -> None:
        ms = int((time.monotonic() - started) * 1000)
        color, mark = self._MARKS[outcome]
        label, tail = redact(label), f"  {redact(detail)}" if detail else ""
        self._write(f"{indent}{mark} {label}  {ms} ms{tail}",
                    f"{indent}[{color}]{mark}[/{color}] {_esc(label)} [dim]{ms} ms[/dim]"
                    f"{_esc(tail)}")

    def _write(self, plain: str, markup: str) -> None:
        if self.terminal:
            self.console.print(markup)
        else:
            self.stream.write(plain + "\n")


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
