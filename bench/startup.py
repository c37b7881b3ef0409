"""3. `invoke --list` startup, and what loading the tasks imports.

Wall time of `.venv/bin/invoke --list` (a subprocess from the repository root, interleaved
with `python -c pass`, after an untimed warm-up round). Then
`python -X importtime -c "import tasks"`: none of the heavy modules may appear, since
task bodies import them only when they run.
"""

from __future__ import annotations

import sys

from bench.common import (
    ROOT,
    Context,
    Row,
    Section,
    interleaved,
    ratio,
    run_checked,
    run_process,
    seconds,
    venv_bin,
)

TARGET = 0.3  # seconds, absolute
HEAVY = ("pulumi", "rich.table", "psycopg", "jinja2")
LIST = "`invoke --list`"
FLOOR = "python -c pass"


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


def run(ctx: Context) -> list[Section]:
    invoke = str(venv_bin("invoke"))
    commands = {LIST: [invoke, "--list"], FLOOR: [sys.executable, "-c", "pass"]}

    def run_one(name: str) -> float:
        return run_process(commands[name], cwd=ROOT, env=ctx.child_env, tty=ctx.options.tty)[0]

    samples = interleaved([LIST, FLOOR], ctx.options.reps, ctx.options.warmup, run_one)
    modules, tasks_us = imported_modules()
    present = {heavy: any(m == heavy or m.startswith(heavy + ".") for m in modules)
               for heavy in HEAVY}
    rows = []
    for name in (LIST, FLOOR):
        s = samples[name]
        med, low, high = s.cells()
        row = Row(name, med, low, high)
        if s.error:
            row.median = f"failed: {s.error[:200]}"
        elif samples[FLOOR].times:
            row.ratio = ratio(s.median, samples[FLOOR].median)
        if name == LIST and not s.error:
            row.target = f"< {seconds(TARGET)}"
            row.met = "yes" if s.median < TARGET else "no"
        rows.append(row)
    rows.append(Row("heavy modules imported by `import tasks`",
                    ", ".join(f"{h}: {'yes' if hit else 'no'}" for h, hit in present.items()),
                    target="none", met="no" if any(present.values()) else "yes"))
    notes = [f"{ctx.options.reps} timed run(s) of each, interleaved; `python -X importtime -c "
             f"\"import tasks\"`: {len(modules)} modules, tasks cumulative "
             f"{tasks_us / 1000:.0f} ms."]
    return [Section("Start-up", rows, notes,
                    failed=any(s.error for s in samples.values()))]
