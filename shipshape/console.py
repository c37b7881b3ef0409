"""Human output (rich) and JSON output. Every string passes through redact().

Progress, errors and the closing sentence go to stderr, results to stdout, so
`--json | jq` and `> plan.sql` stay clean.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from functools import cached_property

from shipshape.progress import Progress, StepHandle
from shipshape.secrets import redact
from shipshape.text import to_jsonable

# Environment variables with which rich treats a stream that is not a TTY as a terminal.
_FORCING = ("FORCE_COLOR", "TTY_COMPATIBLE")


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
        self.depth = 0
        self._status = None

    @cached_property
    def console(self):
        """rich's Console, made when first drawn on: a run with no step imports no rich."""
        return _console(self.stream)

    @cached_property
    def terminal(self) -> bool:
        """Whether to draw: rich decides (it honours FORCE_COLOR and friends), but only
        asked when the stream is a terminal or the environment may force one."""
        if not any(os.environ.get(name) for name in _FORCING):
            try:
                if not self.stream.isatty():
                    return False
            except (AttributeError, ValueError):  # no isatty, or a closed stream
                return False
        return self.console.is_terminal

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
        self._write(f"{'  ' * self.depth}· {redact(message)}", lambda: f"{'  ' * self.depth}"
                    f"[dim]·[/dim] {_esc(redact(message))}")

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
                    lambda: f"{indent}[{color}]{mark}[/{color}] {_esc(label)} [dim]{ms} ms[/dim]"
                    f"{_esc(tail)}")

    def _write(self, plain: str, markup) -> None:
        """plain text off a terminal; on one, markup() (made only then: it needs rich)."""
        if self.terminal:
            self.console.print(markup())
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
    """A title, then aligned columns in plain text: no rich (importing and laying out its
    Table cost db.status 0.1 to 0.3 s), greppable, and the same on a terminal and in CI.
    The last column is not padded, so a long detail runs on instead of folding."""
    cells = [[redact("" if cell is None else str(cell)).replace("\n", " ") for cell in row]
             for row in rows]
    widths = [max([len(column), *(len(row[i]) for row in cells)])
              for i, column in enumerate(columns)]

    def line(values: list[str]) -> str:
        padded = [value.ljust(width) for value, width in zip(values[:-1], widths, strict=False)]
        return "  ".join([*padded, values[-1]]).rstrip()

    out = [redact(title), line(columns), line(["-" * width for width in widths]),
           *(line(row) for row in cells)]
    (stream or sys.stdout).write("\n".join(out) + "\n")


def print_final(text: str) -> None:
    """A command's one closing sentence (what it did, what to run next): on stderr, with the
    progress, so that stdout carries only the output (tables, SQL, JSON) and `> file` or
    `| jq` never mixes the two (issue 11)."""
    print_text(text, sys.stderr)


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


_FLEET_MARKS = {"deployed": "✓", "already": "✓", "failed": "✗", "not-run": "-",
                "running": "…", "pending": "·"}


class ConsoleFleetWatcher:
    """A fleet run as it goes, on stderr: a line per wave and per database finished (✓
    deployed or already, ✗ failed). On a terminal, below them, one live table (rich) with
    the counts and the databases under way, each with its gate and time; elsewhere (CI,
    pipes) only the plain lines.

    Called from the run's worker threads; everything it keeps is behind one lock.
    """

    def __init__(self, stream=None):
        import threading

        self.stream = stream or sys.stderr
        self.console = _console(self.stream)
        self.terminal = self.console.is_terminal
        self.lock = threading.Lock()
        self.live = None
        self.run = None
        self.current_wave = ""

    # --- the Watcher interface (shipshape.ops.fleets.Watcher) ---------------------------

    def start(self, run) -> None:
        self.run = run
        waves = ", ".join(f"{name} {len(names)}" for name, names in run.waves)
        self._print(f"· fleet {run.fleet} ({run.env}{', shard ' + run.shard if run.shard else ''}"
                    f"): run {run.run_id}, attempt {run.attempt}; {len(run.outcomes)} "
                    f"database(s) in waves: {waves}; parallel {run.parallel}, "
                    f"max_failures {run.max_failures}")
        if self.terminal:
            from rich.live import Live

            self.live = Live(console=self.console, get_renderable=self._table,
                             refresh_per_second=4, transient=True, redirect_stdout=False,
                             redirect_stderr=False)
            self.live.start()

    def wave(self, run, name: str) -> None:
        with self.lock:
            self.current_wave = name
        names = dict(run.waves)[name]
        self._print(f"· wave {name}: {len(names)} database(s)")

    def update(self, run, outcome) -> None:
        if outcome.status not in ("deployed", "already", "failed"):
            return
        self._print(self._line(outcome))

    def finish(self, run) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        if run.halted:
            self._print(f"! stopped: {run.halted}")
        self._print(f"· {run.summary()}")

    # --- drawing --------------------------------------------------------------------------

    def _line(self, o) -> str:
        mark = _FLEET_MARKS.get(o.status, "?")
        versions = (f"  {o.from_version or 0:04d} -> {o.to_version or 0:04d}"
                    if o.to_version is not None else "")
        took = f"  {o.duration_ms / 1000:.1f} s"
        if o.status == "failed":
            first = (o.error.splitlines() or [""])[0]
            return f"{mark} {o.name}  failed at {o.gate or 'start'} (exit {o.exit_code}){took}  {first[:200]}"
        return f"{mark} {o.name}  {o.status}{versions}{took}  {o.detail}"

    def _print(self, text: str) -> None:
        with self.lock:
            if self.terminal:  # above the live table, which rich redraws below
                self.console.print(_esc(redact(text)))
            else:
                self.stream.write(redact(text) + "\n")
                self.stream.flush()

    def _table(self):
        import time as time_

        from rich.table import Table

        run = self.run
        with self.lock:
            outcomes = list(run.outcomes.values())
            wave = self.current_wave
        counts = {s: sum(o.status == s for o in outcomes)
                  for s in ("deployed", "already", "failed", "running", "pending")}
        title = (f"fleet {run.fleet} ({run.env}), wave {wave}: "
                 + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
        table = Table(title=_esc(title), title_justify="left")
        for column in ("database", "wave", "gate", "time"):
            table.add_column(column)
        now = time_.monotonic()
        for o in [o for o in outcomes if o.status == "running"][: max(self.console.height - 6, 3)]:
            took = now - o.started if o.started else 0.0
            table.add_row(_esc(o.name), _esc(o.wave), f"[cyan]…[/cyan] {_esc(o.gate)}",
                          f"{took:.1f} s")
        return table


def print_fleet_summary(run, stream=None) -> None:
    """The run's summary table: a row per database, then where the report is."""
    rows = []
    for o in run.outcomes.values():
        versions = (f"{o.from_version or 0:04d} -> {o.to_version or 0:04d}"
                    if o.to_version is not None else "")
        what = (o.detail if o.status != "failed"
                else f"exit {o.exit_code} at {o.gate or 'start'}: {(o.error.splitlines() or [''])[0]}")
        rows.append([o.name, o.wave, o.status, versions, o.deployment_id or "",
                     f"{o.duration_ms / 1000:.1f} s" if o.status != "not-run" else "", what[:200]])
    print_table(f"fleet {run.fleet} ({run.env}, --phase {run.phase}): {run.outcome}, "
                f"{run.summary()}",
                ["database", "wave", "result", "versions", "deployment", "time", "detail"],
                rows, stream)
    if run.report_md:
        print_text(f"report: {run.report_md} (and {run.report_json.name})", stream)
