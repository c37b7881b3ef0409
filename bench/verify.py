"""4. `invoke db.verify` of a 500-table schema, as a process, side by side with migra.

50 migrations x 10 tables (primary key, unique column, foreign key, index each; bench.trees
.schema_tree), applied to a "live" database by `invoke db.migrate` (untimed). Then:

- cold: `invoke db.verify --env local --dsn LIVE --sql-dir TREE` with an empty
  SHIPSHAPE_STATE_DIR: it builds the shadow database, snapshots it, caches it, diffs;
- warm: the same command again (shadow snapshot from the cache), interleaved with
- migra (when installed): `migra --unsafe LIVE REFERENCE`, the schema diff a migra user runs
  to check a database against the code; REFERENCE is a second database the same migrations
  built beforehand, untimed (migra cannot build it itself, so it gets the prebuilt
  reference for free, as warm verify gets its cached snapshot). migra diffs the
  schema only; verify also checks history, seed rows and data checks.

Both must find nothing (verify exit 0, migra exit 0: no statements).
"""

from __future__ import annotations

import sys

from bench import peers
from bench.apply import invoke_cmd
from bench.common import (
    ROOT,
    Context,
    Row,
    Section,
    child_env,
    interleaved,
    ratio,
    run_process,
    seconds,
)
from bench.trees import schema_tree

TARGET_WARM = 1.0  # seconds, absolute

WARM = "shipshape `invoke db.verify` (warm: shadow snapshot cached)"
MIGRA = "migra --unsafe LIVE REFERENCE (reference prebuilt, untimed)"
COLD = "shipshape `invoke db.verify` (cold: builds the shadow database)"


def migra_url(dsn: str) -> str:
    """migra goes through SQLAlchemy, whose postgresql:// is psycopg2 (installed by the
    bench extra) on 2.0 and psycopg 3 on 2.1: name the driver that is installed."""
    rest = dsn.split("://", 1)[1]
    try:
        import psycopg2  # noqa: F401
        return f"postgresql+psycopg2://{rest}"
    except ImportError:
        return f"postgresql+psycopg://{rest}"


def run(ctx: Context) -> list[Section]:
    migrations, per = (5, 10) if ctx.options.quick else (50, 10)
    tree = schema_tree(ctx.workdir / f"schema{migrations * per}", migrations, per)
    tool = peers.migra()
    live = ctx.databases.create()
    reference = ctx.databases.create()
    try:
        env = ctx.child_env
        apply_seconds, _ = run_process(
            invoke_cmd("db.migrate", "--env", "local", "--dsn", live, "--sql-dir", str(tree)),
            cwd=ROOT, env=env, tty=False)
        verify = invoke_cmd("db.verify", "--env", "local", "--dsn", live, "--sql-dir", str(tree))
        cold_state = ctx.workdir / "verify-cold-state"
        cold, _ = run_process(verify, cwd=ROOT, env=child_env(cold_state, ctx.options.tty),
                              tty=ctx.options.tty)
        commands = {WARM: (verify, child_env(cold_state, ctx.options.tty))}
        if tool.available:
            run_process(invoke_cmd("db.migrate", "--env", "local", "--dsn", reference,
                                   "--sql-dir", str(tree)), cwd=ROOT, env=env, tty=False)
            commands[MIGRA] = ([str(tool.path), "--unsafe", migra_url(live),
                                migra_url(reference)], env)

        def run_one(name: str) -> float:
            cmd, cmd_env = commands[name]
            elapsed, out = run_process(cmd, cwd=ROOT, env=cmd_env, tty=ctx.options.tty)
            if name == MIGRA and out.strip():
                raise RuntimeError(f"migra found differences: {out.strip()[:300]}")
            return elapsed

        print(f"bench: verify, {migrations * per} tables", file=sys.stderr, flush=True)
        samples = interleaved(list(commands), ctx.options.reps, ctx.options.warmup, run_one)
    finally:
        ctx.databases.drop(live)
        ctx.databases.drop(reference)

    rows, failed = [], False
    base = samples.get(MIGRA)
    base_ok = base is not None and base.times and not base.error
    for name in (WARM, MIGRA):
        if name not in samples:
            rows.append(Row(name, median=f"skipped: {tool.reason}"))
            continue
        s = samples[name]
        row = s.row(name, base)
        failed = failed or bool(s.error)
        if name == WARM and not s.error:
            row.target = f"< {seconds(TARGET_WARM)}"
            row.met = "yes" if s.median < TARGET_WARM else "no"
        rows.append(row)
    rows.append(Row(COLD, seconds(cold), ratio=ratio(cold, base.median) if base_ok else "—"))
    notes = [
        f"{migrations * per} tables, {migrations * per} foreign keys; applied by "
        f"`invoke db.migrate` in {seconds(apply_seconds)} (untimed).",
        f"{ctx.options.reps} timed run(s) of warm verify and migra, interleaved"
        + (" after an untimed warm-up round" if ctx.options.warmup else "")
        + "; cold verify once, first. Ratios against migra.",
        "migra compares schemas only and is handed a reference database built beforehand; "
        "verify also reads the history, the seed rows and the data checks.",
    ]
    return [Section(f"Verify a {migrations * per}-table schema", rows, notes, failed=failed)]
