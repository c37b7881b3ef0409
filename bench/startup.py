"""3. `invoke --list` startup, and what loading the tasks imports.

Wall time of `.venv/bin/invoke --list` (a subprocess from the repository root, median of
RUNS after one untimed warm-up) against `python -c pass`. Then
`python -X importtime -c "import tasks"`: none of the heavy modules may appear, since
task bodies import them only when they run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.common import ROOT, Context, Row, median, run_checked, seconds, timed

RUNS = 5
TARGET = 0.3  # seconds, absolute
HEAVY = ("pulumi", "rich.table", "psycopg", "jinja2")


def _median_wall(command: list[str]) -> tuple[float, list[float]]:
    run_checked(command, cwd=ROOT)  # warm-up: .pyc files and page cache
    times = [timed(run_checked, command, cwd=ROOT)[0] for _ in range(RUNS)]
    return median(times), times


def imported_modules(statement: str = "import tasks") -> tuple[set[str], int]:
    """Modules `statement` imports (from -X importtime), and its cumulative µs."""
    result = run_checked([sys.executable, "-X", "importtime", "-c", statement], cwd=ROOT)
    modules, total = set(), 0
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        if not cumulative.isdigit():  # the header line
            continue
        modules.add(name)
        if name == statement.split()[-1]:
            total = int(cumulative)
    return modules, total


def run(ctx: Context) -> list[Row]:
    invoke = str(Path(sys.executable).parent / "invoke")
    listed, listed_times = _median_wall([invoke, "--list"])
    bare, _ = _median_wall([sys.executable, "-c", "pass"])
    modules, tasks_us = imported_modules()
    present = {heavy: any(m == heavy or m.startswith(heavy + ".") for m in modules)
               for heavy in HEAVY}
    return [
        Row(
            benchmark="3. `invoke --list` startup",
            measured=f"invoke --list {seconds(listed)}",
            baseline=f"python -c pass {seconds(bare)}",
            ratio=f"{listed / bare:.1f}x",
            target=f"< {TARGET:g} s (absolute)",
            within="yes" if listed < TARGET else "no",
            notes=f"median of {RUNS} subprocess runs after a warm-up "
                  f"({', '.join(seconds(t) for t in listed_times)})",
        ),
        Row(
            benchmark="3. heavy modules imported by `import tasks`",
            measured=", ".join(f"{heavy}: {'yes' if hit else 'no'}"
                               for heavy, hit in present.items()),
            baseline="—",
            ratio="—",
            target="none imported",
            within="no" if any(present.values()) else "yes",
            notes=f"`python -X importtime -c \"import tasks\"`: {len(modules)} modules, "
                  f"tasks cumulative {tasks_us / 1000:.0f} ms",
        ),
    ]
