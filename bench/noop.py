"""2. No-op at the largest N (1000): everything applied, nothing to do.

What a deploy pays every time once the database is up to date: `invoke db.migrate` and
`invoke db.status` against each peer's own "nothing to do" (`alembic upgrade head`,
`yoyo apply`, `dbmate up`) and each peer's status (`alembic current`, `yoyo list`,
`dbmate status`), each on the database it applied itself in benchmark 1 (or, when that
did not run, one it applies here, untimed). psql running migrate.sql again (it skips every
migration by its history row) is the baseline; `python -c pass` is the floor.
"""

from __future__ import annotations

import sys

from bench import apply, peers
from bench.common import ROOT, Context, Row, Section, interleaved, run_process, seconds

TARGET = 0.25  # seconds, absolute; and ahead of every peer

MIGRATE = "shipshape `invoke db.migrate`"
STATUS = "shipshape `invoke db.status`"
PSQL = "psql -f migrate.sql (skips all by history)"
ALEMBIC = "alembic upgrade head"
ALEMBIC_CURRENT = "alembic current"
YOYO = "yoyo apply"
YOYO_LIST = "yoyo list"
DBMATE = "dbmate up"
DBMATE_STATUS = "dbmate status"
DBMATE_NATIVE = "dbmate up (native binary, no npm shim)"
FLOOR = "python -c pass"

# contender -> the apply contender whose database it runs on
SOURCE = {MIGRATE: apply.SHIPSHAPE, STATUS: apply.SHIPSHAPE, PSQL: apply.PSQL,
          ALEMBIC: apply.ALEMBIC, ALEMBIC_CURRENT: apply.ALEMBIC, YOYO: apply.YOYO,
          YOYO_LIST: apply.YOYO, DBMATE: apply.DBMATE, DBMATE_STATUS: apply.DBMATE,
          DBMATE_NATIVE: apply.DBMATE}
PEERS_APPLY = (ALEMBIC, YOYO, DBMATE, DBMATE_NATIVE)
PEERS_STATUS = (ALEMBIC_CURRENT, YOYO_LIST, DBMATE_STATUS)


def _databases(ctx: Context, n: int, w: apply.Workload) -> dict[str, str]:
    applied = ctx.cache.get("applied")
    if applied and applied[0] == n:
        return applied[1]
    kept = {}
    for name in (apply.SHIPSHAPE, apply.PSQL, apply.ALEMBIC, apply.YOYO, apply.DBMATE):
        if name in w.skipped:
            continue
        dsn = ctx.databases.create()
        run_process(w.apply_command(name, dsn), cwd=ROOT, env=ctx.child_env, tty=False)
        kept[name] = dsn
    ctx.cache["applied"] = (n, kept)
    return kept


def command(w: apply.Workload, name: str, dsn: str) -> list[str]:
    if name == MIGRATE:
        return w.apply_command(apply.SHIPSHAPE, dsn)
    if name == STATUS:
        return apply.invoke_cmd("db.status", "--env", "local", "--dsn", dsn,
                                "--sql-dir", str(w.tree))
    if name == PSQL:
        return w.apply_command(apply.PSQL, dsn)
    if name == ALEMBIC:
        return w.apply_command(apply.ALEMBIC, dsn)
    if name == ALEMBIC_CURRENT:
        return peers.alembic_current(w.tools["alembic"], w.alembic_ini, dsn)
    if name == YOYO:
        return w.apply_command(apply.YOYO, dsn)
    if name == YOYO_LIST:
        return peers.yoyo_list(w.tools["yoyo"], w.yoyo_dir, dsn)
    if name == DBMATE:
        return w.apply_command(apply.DBMATE, dsn)
    if name == DBMATE_STATUS:
        return peers.dbmate_cmd(w.tools["dbmate"].path, w.dbmate_dir, dsn, "status")
    if name == DBMATE_NATIVE:
        return peers.dbmate_cmd(peers.dbmate_native(), w.dbmate_dir, dsn, "up")
    if name == FLOOR:
        return [sys.executable, "-c", "pass"]
    raise KeyError(name)


def run(ctx: Context) -> list[Section]:
    n = max(ctx.options.sizes)
    w = apply.Workload.build(ctx, n)
    dbs = _databases(ctx, n, w)
    order = [MIGRATE, STATUS, PSQL, ALEMBIC, ALEMBIC_CURRENT, YOYO, YOYO_LIST, DBMATE,
             DBMATE_STATUS, DBMATE_NATIVE, FLOOR]
    skipped = {}
    for name in order:
        source = SOURCE.get(name)
        if source and source not in dbs:
            skipped[name] = w.skipped.get(source, "its database was not built")
    if DBMATE_NATIVE not in skipped and peers.dbmate_native() is None:
        skipped[DBMATE_NATIVE] = "no native binary under bench/node/node_modules/@dbmate"
    contenders = [c for c in order if c not in skipped]

    def run_one(name: str) -> float:
        dsn = dbs.get(SOURCE.get(name, ""), "")
        elapsed, out = run_process(command(w, name, dsn), cwd=ROOT, env=ctx.child_env,
                                   tty=ctx.options.tty)
        if name == MIGRATE and "0 migration(s) applied" not in out:
            raise RuntimeError(f"not a no-op: {out.strip()[-300:]}")
        return elapsed

    print(f"bench: no-op at N={n}", file=sys.stderr, flush=True)
    samples = interleaved(contenders, ctx.options.reps, ctx.options.warmup, run_one)

    def fastest(names) -> tuple[str, float] | None:
        ok = [(samples[p].median, p) for p in names if p in samples and samples[p].times
              and not samples[p].error]
        if not ok:
            return None
        best, peer = min(ok)
        return peer, best

    base = samples.get(PSQL)
    rows, failed = [], False
    for name in order:
        if name in skipped:
            rows.append(Row(name, median=f"skipped: {skipped[name]}"))
            continue
        s = samples[name]
        row = s.row(name, base)
        failed = failed or bool(s.error)
        if name in (MIGRATE, STATUS) and not s.error:
            rival = fastest(PEERS_APPLY if name == MIGRATE else PEERS_APPLY + PEERS_STATUS)
            row.target = f"≤ {seconds(TARGET)}" + (f", < {rival[0]} ({seconds(rival[1])})"
                                                  if rival else "")
            row.met = "yes" if s.median <= TARGET and (not rival or s.median < rival[1]) \
                else "no"
        rows.append(row)
    notes = [
        f"{ctx.options.reps} timed run(s) of each"
        + (" after an untimed warm-up round" if ctx.options.warmup else "")
        + f", interleaved; each on the database that tool brought to {n} migrations in "
          "the apply benchmark. Ratios against psql re-running migrate.sql.",
        "Target: ≤ 0.25 s, and ahead of the fastest peer (for db.status: of every peer's "
        "apply and status commands).",
        "dbmate's npm package runs a node shim (node_modules/.bin/dbmate) that spawns the "
        "Go binary; the native row shows dbmate without node's start-up.",
    ]
    return [Section(f"No-op at N={n} (everything applied)", rows, notes, failed=failed)]
