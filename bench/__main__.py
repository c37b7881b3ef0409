"""`make bench` = `.venv/bin/python -m bench [--quick] [options] [NAME ...]`

NAME: apply, noop, deploy, verify, startup, memory (default: all, in that order).
Every contender runs as a child process, as a user types it (bench/common.run_process).

    python -m bench                 the full run: N = 100, 300, 1000, 5 timed runs each
    python -m bench --quick         a smoke run: N = 20, 1 run each, no warm-up (about 1 min)
    python -m bench --sizes 300 --reps 3 apply noop

Prints a Markdown report and overwrites bench/results.md with it (--out elsewhere), with
the machine and the date. Never asserts timing: a missed target is reported, not failed.
The exit code is 1 only when something could not run (its row says why). Every database
the run creates (ss_bench_*) is dropped at the end, also on errors, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.common import (
    ADMIN_DSN,
    RESULTS,
    ROOT,
    Context,
    Databases,
    Options,
    Row,
    Section,
    child_env,
    load_average,
    machine_info,
)

BENCHMARKS = ("apply", "noop", "deploy", "verify", "startup", "memory")
COLUMNS = ("what", "{measured}", "fastest", "slowest", "ratio", "target", "met")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(section: Section) -> str:
    header = [c.format(measured=section.measured) for c in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in section.rows:
        cells = (r.what, r.median, r.low, r.high, r.ratio, r.target, r.met)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def summary(sections: list[Section]) -> str:
    """Every row that has a target, in one table: what the issue asks, and where it stands."""
    lines = ["| benchmark | shipshape | fastest–slowest | ratio | target | met |",
             "|---|---|---|---|---|---|"]
    for section in sections:
        for r in section.rows:
            if r.target != "—":
                spread = f"{r.low}–{r.high}" if r.low != "—" else "—"
                lines.append("| " + " | ".join(_cell(c) for c in (
                    f"{section.title}: {r.what}", r.median, spread, r.ratio, r.target,
                    r.met)) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def report(sections: list[Section], machine: dict[str, str], started: datetime,
           elapsed: float, argv: list[str], options: Options) -> str:
    command = "python -m bench" + "".join(f" {a}" for a in argv)
    out = [
        "# shipshape benchmarks",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC: `{command}` ({elapsed:.0f} s in all). "
        f"Every command timed as a process, as a user runs it; medians of {options.reps} "
        f"run(s), interleaved; ratios against a baseline measured in the same run. "
        f"Nothing here is asserted; this file is overwritten by every run.",
        "",
        *(f"- {key}: {value}" for key, value in machine.items()),
    ]
    if options.quick:
        out += ["", "**A --quick smoke run: one run each, no warm-up, small N. Not figures "
                    "to quote.**"]
    targets = summary(sections)
    if targets:
        out += ["", "## The targets", "", targets]
    for section in sections:
        out += ["", f"## {section.title}", "", section.markdown or table(section), ""]
        out += [f"- {note}" for note in section.notes]
    return "\n".join(out) + "\n"


def parse(argv: list[str]) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: N=20, 1 repetition, no warm-up, a small verify schema")
    parser.add_argument("--sizes", help="comma-separated N for apply (default 100,300,1000)")
    parser.add_argument("--reps", type=int, help="timed runs of each contender (default 5)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up round")
    parser.add_argument("--no-tty", action="store_true",
                        help="children write into pipes instead of a pseudo-terminal")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"where the report goes (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    if args.quick:
        options = Options(sizes=(20,), reps=1, warmup=False, quick=True)
    else:
        options = Options()
    sizes = tuple(int(n) for n in args.sizes.split(",")) if args.sizes else options.sizes
    options = Options(sizes=sizes, reps=args.reps or options.reps,
                      warmup=options.warmup and not args.no_warmup, tty=not args.no_tty,
                      quick=options.quick)
    return args, options


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    args, options = parse(argv)
    names = tuple(args.names) or BENCHMARKS
    signal.signal(signal.SIGTERM, _sigterm)
    started, clock = datetime.now(UTC), time.monotonic()
    machine = machine_info(ADMIN_DSN)
    sections: list[Section] = []
    failed = False
    databases = Databases(ADMIN_DSN)
    try:
        with tempfile.TemporaryDirectory(prefix="shipshape-bench-") as workdir:
            ctx = Context(ADMIN_DSN, Path(workdir), databases, options,
                          child_env(Path(workdir) / "state", options.tty))
            for name in names:
                print(f"bench: {name} ...", file=sys.stderr, flush=True)
                began = time.monotonic()
                try:
                    got = importlib.import_module(f"bench.{name}").run(ctx)
                    sections += got
                    failed = failed or any(s.failed for s in got)
                except Exception as exc:
                    failed = True
                    traceback.print_exc()
                    sections.append(Section(name, [Row(name, median="did not run: "
                                                       f"{type(exc).__name__}: {exc}"[:300])]))
                print(f"bench: {name} done in {time.monotonic() - began:.1f} s",
                      file=sys.stderr, flush=True)
    finally:
        leftover = databases.drop_all()
    if leftover:
        failed = True
        print(f"bench: could not drop {', '.join(leftover)}", file=sys.stderr)
    machine["load average (1, 5, 15 min) at the end"] = load_average()
    text = report(sections, machine, started, time.monotonic() - clock, argv, options)
    args.out.write_text(text)
    print(text)
    print(f"written to {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
