"""deploy and render: the whole gated pipeline, and the SQL it would run for review."""

from __future__ import annotations

from shipshape.tasks._task import environment, progress, target, task


@task(iterable=["set_"], help={
    "phase": "expand (up to the first contract migration), contract (after every replica "
             "runs the new release; exit 3 while an older one is alive) or all (expand, "
             "app, contract). Default: the env's deploy_phase: all for local, else expand"})
def deploy(c, env="local", dsn=None, sql_dir=None, dry_run=False, json_=False, set_=None,
           phase=None):
    """Deploy: preflight, lock, migrate (expand), seed, verify, app health, contract, record.

    Stops at the first failing gate with that gate's exit code; --dry-run prints every
    statement it would run and changes nothing.
    """
    from shipshape import commands
    from shipshape.console import emit_json, print_text
    from shipshape.errors import ShipshapeError

    tgt, sql_dir = target(env, dsn, set_, sql_dir)
    if dry_run:
        print_text(commands.deploy_script(tgt, sql_dir, phase=phase))
        return
    watcher = progress(quiet=json_)
    watcher.info(f"deploying {tgt.describe()}")
    try:
        result = commands.deploy(tgt, sql_dir, progress=watcher, phase=phase)
    except ShipshapeError as exc:
        if exc.result is not None and not json_:
            print_summary(exc.result)
        raise
    if json_:
        emit_json(result)
    else:
        print_summary(result)


def print_summary(result) -> None:
    from shipshape.console import print_table

    rows = [[g.name, {"ok": "✓ ok", "failed": "✗ failed", "skipped": "- skipped"}.get(g.status, g.status),
             f"{g.duration_ms} ms" if g.status in ("ok", "failed") else "", g.detail]
            for g in result.gates if g.status != "pending"]
    versions = f"{result.from_version or 0:04d} -> {result.to_version or 0:04d}"
    print_table(f"deploy {result.env} ({result.phase}): {versions}", ["gate", "result", "time", "detail"], rows)


@task(iterable=["set_"], help={"out": "directory for migrate.sql, rollback.sql, seed.sql, verify.sql "
                                      "(default: build/<env>)"})
def render(c, env="local", out=None, dsn=None, sql_dir=None, set_=None):
    """Write the SQL an env would run, as psql scripts, for review.

    migrate.sql, rollback.sql, seed.sql, and verify.sql (psql only: a ✓/✗ row per
    expected object, exit 3 when anything is ✗). Run them with
    `psql -v ON_ERROR_STOP=1 -f FILE "$DATABASE_URL"`.
    """
    from pathlib import Path

    from shipshape import commands
    from shipshape.console import print_text
    from shipshape.paths import project_root

    env_, sql_dir = environment(env, set_, sql_dir)
    out_dir = Path(out) if out else project_root() / "build" / env_.name
    for path in commands.render(env_, sql_dir, out_dir, dsn=dsn).values():
        print_text(f"wrote {path}")
