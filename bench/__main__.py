"""`make bench` = `.venv/bin/python -m bench [NAME ...]`; NAME: migrations, verify,
startup, memory (default: all, in that order).

Prints a Markdown table and overwrites bench/RESULTS.md with it, with the machine and the
date. Never asserts timing: a target that is missed is reported, not failed. The exit code
is 1 only when a benchmark could not run (the row says why). Every database the run
creates (ss_bench_*) is dropped at the end, also on errors and on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import importlib
import signal
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench.common import ADMIN_DSN, RESULTS, ROOT, Context, Databases, Row, machine_info

BENCHMARKS = ("migrations", "verify", "startup", "memory")
COLUMNS = ("benchmark", "measured", "baseline", "ratio", "target", "within target", "notes")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = (r.benchmark, r.measured, r.baseline, r.ratio, r.target, r.within, r.notes)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def report(rows: list[Row], machine: dict[str, str], started: datetime, elapsed: float,
           names: tuple[str, ...]) -> str:
    header = [
        "# shipshape benchmarks",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC by `make bench` ({', '.join(names)}; "
        f"{elapsed:.0f} s in all). Overwritten by every run; ratios are against a baseline "
        f"measured in the same run. Nothing here is asserted.",
        "",
        *(f"- {key}: {value}" for key, value in machine.items()),
        "",
        "",
    ]
    return "\n".join(header) + table(rows) + "\n"


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    names = tuple(argv) or BENCHMARKS
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _sigterm)
    started, clock = datetime.now(timezone.utc), time.monotonic()
    machine = machine_info(ADMIN_DSN)
    rows: list[Row] = []
    failed = False
    databases = Databases(ADMIN_DSN)
    try:
        with tempfile.TemporaryDirectory(prefix="shipshape-bench-") as workdir:
            ctx = Context(ADMIN_DSN, Path(workdir), databases)
            for name in names:
                print(f"bench: {name} ...", file=sys.stderr, flush=True)
                began = time.monotonic()
                try:
                    rows += importlib.import_module(f"bench.{name}").run(ctx)
                except Exception as exc:
                    failed = True
                    traceback.print_exc()
                    rows.append(Row(benchmark=name, measured="did not run",
                                    notes=f"{type(exc).__name__}: {exc}"[:300]))
                print(f"bench: {name} done in {time.monotonic() - began:.1f} s",
                      file=sys.stderr, flush=True)
    finally:
        leftover = databases.drop_all()
    if leftover:
        failed = True
        print(f"bench: could not drop {', '.join(leftover)}", file=sys.stderr)
    text = report(rows, machine, started, time.monotonic() - clock, names)
    RESULTS.write_text(text)
    print(text)
    print(f"written to {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
