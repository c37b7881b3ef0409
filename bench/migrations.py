"""1. Applying 300 migrations: the engine vs the psql script `invoke render` writes.

Engine: migrations.load (render) + db.connect + advisory_lock + migrations.migrate,
in this process, to a fresh database. Baseline: render the same migrations with
bundle.migrate_script (the exact migrate.sql of `invoke render`, which records
shipshape.history the same way) and apply it in ONE `psql -X -q -v ON_ERROR_STOP=1 -f`
session to another fresh database. Both timings include rendering; the psql session
alone is shown in the notes. Median of RUNS runs each after one untimed warm-up of
both, alternating which goes first.

Also a child-process entry point, used by the memory benchmark:
    python -m bench.migrations engine-apply SQL_DIR DSN
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.common import Context, Row, median, run_checked, seconds, timed
from bench.trees import migration_tree

COUNT = 300
RUNS = 3
TARGET_RATIO = 1.3


def tree(ctx: Context) -> Path:
    """The 300-migration tree, generated once per run."""
    if "migration_tree" not in ctx.cache:
        ctx.cache["migration_tree"] = migration_tree(ctx.workdir / "migrations300", COUNT)
    return ctx.cache["migration_tree"]


def engine_apply(sql_dir: Path, target) -> int:
    """What `invoke db.migrate` does, minus the console: render, connect, lock, migrate."""
    from shipshape import db
    from shipshape.engine import migrations

    loaded = migrations.load(sql_dir, target.env)
    with db.connect(target, purpose="bench migrate") as conn:
        with db.advisory_lock(conn, target.env.migration_lock_wait):
            _, applied = migrations.migrate(conn, target.env, loaded)
    return len(applied)


def render_script(sql_dir: Path, env, out: Path) -> Path:
    """migrate.sql exactly as `invoke render` writes it (bundle.write_bundle)."""
    from shipshape.engine import bundle, migrations
    from shipshape.engine.render import Renderer

    renderer = Renderer(sql_dir, env)
    loaded = migrations.load(sql_dir, env, renderer)
    out.write_text(bundle.migrate_script(renderer, loaded))
    return out


def psql_command(script: Path, dsn: str) -> list[str]:
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script), dsn]


def psql_apply(sql_dir: Path, env, script: Path, dsn: str) -> float:
    """Render, then one psql session; returns the psql session's own duration."""
    render_script(sql_dir, env, script)
    psql_seconds, _ = timed(run_checked, psql_command(script, dsn))
    return psql_seconds


def _history(dsn: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*), count(*) FILTER (WHERE success) "
                            "FROM shipshape.history").fetchone()


def _snapshot(dsn: str) -> dict:
    import psycopg

    from shipshape.engine import catalog

    with psycopg.connect(dsn) as conn:
        return catalog.snapshot(conn)


def _checks(ctx: Context, sql_dir: Path, engine_dsn: str, psql_dsn: str) -> str:
    """Untimed: both ways recorded the same history and built the same schema, and the
    rollbacks undo it all (the generated tree is correct)."""
    from shipshape import db
    from shipshape.engine import catalog, migrations

    problems = []
    for label, dsn in (("engine", engine_dsn), ("psql", psql_dsn)):
        total, ok = _history(dsn)
        if (total, ok) != (COUNT, COUNT):
            problems.append(f"{label} history has {ok}/{total} successful rows, not {COUNT}")
    engine_snap = _snapshot(engine_dsn)
    if len(engine_snap["tables"]) != COUNT // 3:
        problems.append(f"engine built {len(engine_snap['tables'])} tables, not {COUNT // 3}")
    if catalog.diff(engine_snap, _snapshot(psql_dsn)):
        problems.append("engine and psql schemas differ")
    target = ctx.target(engine_dsn)
    loaded = migrations.load(sql_dir, target.env)
    with db.connect(target, purpose="bench rollback") as conn:
        with db.advisory_lock(conn, target.env.migration_lock_wait):
            migrations.rollback(conn, target.env, loaded, 0)
    left = {k: v for k, v in _snapshot(engine_dsn).items() if v}
    if left or _history(engine_dsn) != (0, 0):
        problems.append(f"rollback to 0 left {', '.join(left) or 'history rows'}")
    if problems:
        return "; ".join(problems)
    return "same history and schema both ways; rollback to 0 leaves nothing"


def run(ctx: Context) -> list[Row]:
    env = ctx.env()
    sql_dir = tree(ctx)
    engine_times, psql_times, psql_only = [], [], []
    kept: dict[str, str] = {}
    # Untimed warm-up of both ways: imports, Jinja's package templates, page cache.
    for way in ("engine", "psql"):
        dsn = ctx.databases.create()
        try:
            if way == "engine":
                engine_apply(sql_dir, ctx.target(dsn))
            else:
                psql_apply(sql_dir, env, ctx.workdir / "warm-up.sql", dsn)
        finally:
            ctx.databases.drop(dsn)
    for attempt in range(RUNS):
        order = ("engine", "psql") if attempt % 2 == 0 else ("psql", "engine")
        for way in order:
            dsn = ctx.databases.create()
            if way == "engine":
                elapsed, applied = timed(engine_apply, sql_dir, ctx.target(dsn))
                if applied != COUNT:
                    raise RuntimeError(f"the engine applied {applied} migrations, not {COUNT}")
                engine_times.append(elapsed)
            else:
                script = ctx.workdir / f"migrate-{attempt}.sql"
                elapsed, session = timed(psql_apply, sql_dir, env, script, dsn)
                psql_times.append(elapsed)
                psql_only.append(session)
            previous = kept.pop(way, None)
            if previous:
                ctx.databases.drop(previous)
            kept[way] = dsn
    check = _checks(ctx, sql_dir, kept["engine"], kept["psql"])
    for dsn in kept.values():
        ctx.databases.drop(dsn)

    engine, psql = median(engine_times), median(psql_times)
    ratio = engine / psql
    render_seconds, _ = timed(render_script, sql_dir, env, ctx.workdir / "render-only.sql")
    return [Row(
        benchmark=f"1. apply {COUNT} migrations, engine vs one psql session",
        measured=f"engine {seconds(engine)}",
        baseline=f"psql {seconds(psql)}",
        ratio=f"{ratio:.2f}x",
        target=f"<= {TARGET_RATIO}x",
        within="yes" if ratio <= TARGET_RATIO else "no",
        notes=(f"median of {RUNS} each after an untimed warm-up, fresh database per run, "
               f"both including render "
               f"(render alone {seconds(render_seconds)}; psql session alone "
               f"{seconds(median(psql_only))}); runs engine "
               f"{', '.join(seconds(t) for t in engine_times)}, psql "
               f"{', '.join(seconds(t) for t in psql_times)}; check: {check}"),
    )]


def _main(argv: list[str]) -> int:
    """python -m bench.migrations engine-apply SQL_DIR DSN (the memory benchmark's child)."""
    if len(argv) != 3 or argv[0] != "engine-apply":
        print("usage: python -m bench.migrations engine-apply SQL_DIR DSN", file=sys.stderr)
        return 2
    from bench.common import ROOT
    from shipshape.settings import load_environment
    from shipshape.targets import Target

    applied = engine_apply(Path(argv[1]), Target(load_environment("dev", config_dir=ROOT),
                                                 argv[2], "bench"))
    print(f"{applied} migration(s) applied")
    return 0 if applied == COUNT else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
