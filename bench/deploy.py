"""3. A warm `invoke deploy` of the project's own sql/ tree, nothing pending.

A fresh database is deployed once, untimed (migrate, seed, verify, which also caches the
shadow snapshot in the run's SHIPSHAPE_STATE_DIR); then `invoke deploy --env local --dsn
DSN` again, interleaved with `python -c pass` (the venv's interpreter: the floor any
Python CLI pays). That second-and-later deploy is what every CI run and every `make up`
pays when nothing changed.
"""

from __future__ import annotations

import sys

from bench.apply import invoke_cmd
from bench.common import ROOT, Context, Section, interleaved, run_process, seconds

TARGET = 0.2  # seconds, absolute

DEPLOY = "shipshape `invoke deploy` (warm, nothing pending)"
FLOOR = "python -c pass"


def run(ctx: Context) -> list[Section]:
    dsn = ctx.databases.create()
    try:
        deploy = invoke_cmd("deploy", "--env", "local", "--dsn", dsn)
        first, _ = run_process(deploy, cwd=ROOT, env=ctx.child_env, tty=False)
        commands = {DEPLOY: deploy, FLOOR: [sys.executable, "-c", "pass"]}

        def run_one(name: str) -> float:
            elapsed, out = run_process(commands[name], cwd=ROOT, env=ctx.child_env,
                                       tty=ctx.options.tty)
            if name == DEPLOY and "nothing to apply" not in out:
                raise RuntimeError(f"not a warm deploy: {out.strip()[-400:]}")
            return elapsed

        print("bench: warm deploy", file=sys.stderr, flush=True)
        samples = interleaved([DEPLOY, FLOOR], ctx.options.reps, ctx.options.warmup, run_one)
    finally:
        ctx.databases.drop(dsn)
    rows, failed = [], False
    floor = samples[FLOOR]
    for name in (DEPLOY, FLOOR):
        s = samples[name]
        row = s.row(name, floor)
        failed = failed or bool(s.error)
        if name == DEPLOY and not s.error:
            row.target = f"≤ {seconds(TARGET)}"
            row.met = "yes" if s.median <= TARGET else "no"
        rows.append(row)
    notes = [
        f"{ctx.options.reps} timed run(s) of each, interleaved"
        + (" after an untimed warm-up round" if ctx.options.warmup else "")
        + f"; ratios against `python -c pass`. The first (cold) deploy of the fresh "
          f"database took {seconds(first)}, untimed here.",
        "The deploy's gates: preflight, lock, migrate (nothing to apply), seed (nothing "
        "changes), verify (shadow snapshot cached), record; no app_url for local.",
    ]
    return [Section("Warm deploy of the project's own sql/ tree", rows, notes, failed=failed)]
