"""`make mutate` = `.venv/bin/python -m mutate [ID or area ...] [options]`.

Runs the curated mutants (mutate/mutants.py) one at a time, each against a temporary copy
of the tree, with its own test selection under `pytest -x`; prints the score and the
survivors and writes mutate/RESULTS.md (unless only some mutants were chosen). First, the
union of the selections runs once on the unmutated copy: a failing baseline would make
every "kill" meaningless, so the run stops there.

Options:
  --list            the mutants, their areas and tests; runs nothing
  --check           only check that every mutant still applies (its snippet occurs once)
  --no-baseline     skip the baseline run
  --timeout S       a mutant's tests are ended after S seconds, counted as killed (600)
  --test-timeout S  pytest-timeout per test (180)
  --keep            keep the temporary copy and the logs

Exit 0 when every mutant not marked harmless is killed; 1 when one survived, is stale or
could not run; 2 when the baseline fails.
"""

from __future__ import annotations

import argparse
import fnmatch
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from mutate.mutants import MUTANTS, Mutant
from mutate.runner import ROOT, STALE, SURVIVED, Outcome, Workspace, stale

RESULTS = ROOT / "mutate" / "RESULTS.md"


def choose(patterns: list[str]) -> list[Mutant]:
    if not patterns:
        return list(MUTANTS)
    chosen = [m for m in MUTANTS
              if any(fnmatch.fnmatch(m.id, p) or m.area == p for p in patterns)]
    if not chosen:
        raise SystemExit(f"mutate: no mutant matches {' '.join(patterns)} (see --list)")
    return chosen


def selections(mutants: list[Mutant]) -> tuple[str, ...]:
    """The union of the mutants' tests, without one already inside another."""
    tests = sorted({t for m in mutants for t in m.tests})
    return tuple(t for t in tests
                 if not any(t != o and t.startswith(o.split("::")[0]) and "::" not in o
                            for o in tests))


def score(outcomes: list[Outcome]) -> tuple[int, int, float]:
    counted = [o for o in outcomes if o.status not in (STALE, "error")]
    killed = sum(o.counts_as_killed for o in counted)
    return killed, len(counted), (100.0 * killed / len(counted)) if counted else 0.0


def by_area(outcomes: list[Outcome]) -> dict[str, tuple[int, int]]:
    areas: dict[str, tuple[int, int]] = {}
    for o in outcomes:
        if o.status in (STALE, "error"):
            continue
        killed, total = areas.get(o.mutant.area, (0, 0))
        areas[o.mutant.area] = (killed + o.counts_as_killed, total + 1)
    return areas


def table(outcomes: list[Outcome]) -> str:
    lines = ["| mutant | area | bug planted | result | seconds | caught by |",
             "|---|---|---|---|---|---|"]
    for o in outcomes:
        m = o.mutant
        result = o.status + (" (issue 15)" if m.issue else "")
        caught = o.detail if o.counts_as_killed else (m.harmless or o.detail)
        lines.append(f"| `{m.id}` | {m.area} | {m.bug} | {result} | {o.seconds:.0f} | "
                     f"{caught.replace('|', '/')} |")
    return "\n".join(lines)


def report(outcomes: list[Outcome], started: datetime, elapsed: float) -> str:
    killed, counted, percent = score(outcomes)
    survivors = [o for o in outcomes if o.status == SURVIVED]
    lines = [
        "# shipshape mutation testing",
        "",
        (f"Run {started:%Y-%m-%d %H:%M} UTC by `make mutate` ({elapsed / 60:.0f} min). "
         f"Overwritten by every full run."),
        "",
        f"**Score: {killed} of {counted} mutants killed ({percent:.0f} %).** By area: "
        + ", ".join(f"{area} {k}/{n}" for area, (k, n) in by_area(outcomes).items()) + ".",
        "",
    ]
    if survivors:
        lines += ["Survivors:", ""] + [
            f"- `{o.mutant.id}` ({o.mutant.file}): {o.mutant.bug}. "
            + (f"Harmless: {o.mutant.harmless}" if o.mutant.harmless else "NOT EXPLAINED.")
            for o in survivors] + [""]
    other = [o for o in outcomes if o.status in (STALE, "error")]
    if other:
        lines += ["Not run:", ""] + [f"- `{o.mutant.id}`: {o.status}, {o.detail}"
                                     for o in other] + [""]
    return "\n".join(lines) + "\n" + table(outcomes) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mutate", description=__doc__.split("\n")[0])
    parser.add_argument("patterns", nargs="*", help="mutant ids (globs) or areas")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--test-timeout", type=int, default=180)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    mutants = choose(args.patterns)

    if args.list:
        for m in mutants:
            print(f"{m.id:40} {m.area:12} {m.file}\n{'':40} {' '.join(m.tests)}")
        return 0

    if args.check:  # the working tree itself: a copy would be the same text
        found = [(m, stale(m)) for m in mutants]
        for m, why in found:
            print(f"{'stale' if why else 'ok':6} {m.id}{': ' + why if why else ''}")
        return 1 if any(why for _, why in found) else 0

    base = Path(tempfile.mkdtemp(prefix="shipshape-mutate-"))
    try:
        workspace = Workspace(base)
        workspace.check_imports()
        logs = base / "logs"
        logs.mkdir()
        started, clock = datetime.now(UTC), time.monotonic()
        if not args.no_baseline:
            tests = selections(mutants)
            print(f"baseline: {len(tests)} test selection(s) on the unmutated copy ...",
                  flush=True)
            code, seconds = workspace.pytest(tests, timeout=args.timeout * 3,
                                             test_timeout=args.test_timeout,
                                             log=logs / "baseline.log")
            if code != 0:
                print((logs / "baseline.log").read_text()[-4000:])
                print(f"mutate: the baseline fails (exit {code}): fix the tests first.")
                args.keep = True
                return 2
            print(f"baseline: passed in {seconds:.0f}s", flush=True)
        outcomes = []
        for number, mutant in enumerate(mutants, 1):
            print(f"[{number}/{len(mutants)}] {mutant.id} ... ", end="", flush=True)
            outcome = workspace.run(mutant, timeout=args.timeout,
                                    test_timeout=args.test_timeout, logs=logs)
            outcomes.append(outcome)
            print(f"{outcome.status} ({outcome.seconds:.0f}s) {outcome.detail}", flush=True)
        elapsed = time.monotonic() - clock
        text = report(outcomes, started, elapsed)
        killed, counted, percent = score(outcomes)
        print(f"\nscore: {killed}/{counted} killed ({percent:.0f} %) in {elapsed / 60:.1f} min")
        for o in outcomes:
            if o.status not in ("killed", "timeout"):
                print(f"  {o.status}: {o.mutant.id}: {o.mutant.harmless or o.detail}")
        if not args.patterns:
            RESULTS.write_text(text)
            print(f"wrote {RESULTS.relative_to(ROOT)}")
        unexplained = [o for o in outcomes if not o.counts_as_killed and not o.mutant.harmless]
        return 1 if unexplained else 0
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
