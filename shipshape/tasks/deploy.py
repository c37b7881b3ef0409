"""deploy and render: the whole gated pipeline, and the SQL it would run for review."""

from __future__ import annotations

from shipshape.tasks._task import environment, progress, target, task


@task(iterable=["set_"])
def deploy(c, env="local", dsn=None, sql_dir=None, dry_run=False, json_=False, set_=None):
    """Deploy: preflight, lock, migrate, seed, verify, app health, record.

    Stops at the first failing gate with that gate's exit code; --dry-run prints every
    statement it would run and changes nothing.
    """
    from shipshape.console import emit_json
    from shipshape.ops import pipeline

    tgt, sql_dir = target(env, dsn, set_, sql_dir)
    if dry_run:
        from shipshape.console import print_text

        print_text(pipeline.dry_run(tgt, sql_dir))
        return
    watcher = progress(quiet=json_)
    watcher.info(f"deploying {tgt.describe()}")
    try:
        result = pipeline.deploy(tgt, sql_dir, progress=watcher)
    except Exception as exc:
        result = getattr(exc, "deploy_result", None)
        if result is not None and not json_:
            print_summary(result)
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
    print_table(f"deploy {result.env}: {versions}", ["gate", "result", "time", "detail"], rows)


@task(iterable=["set_"], help={"out": "directory for migrate.sql, rollback.sql, seed.sql, verify.sql "
                                      "(default: build/<env>)"})
def render(c, env="local", out=None, dsn=None, sql_dir=None, set_=None):
    """Write the SQL an env would run, as psql scripts, for review.

    migrate.sql, rollback.sql, seed.sql, and verify.sql (psql only: a ✓/✗ row per
    expected object, exit 3 when anything is ✗). Run them with
    `psql -v ON_ERROR_STOP=1 -f FILE "$DATABASE_URL"`.
    """
    from pathlib import Path

    from shipshape.console import print_text
    from shipshape.engine import bundle, tree
    from shipshape.paths import project_root

    env_, sql_dir = environment(env, set_, sql_dir)
    out_dir = Path(out) if out else project_root() / "build" / env_.name
    code = tree.load(sql_dir, env_)
    expected = _expected_snapshot(env_, dsn, code.migrations)
    written = bundle.write_bundle(out_dir, env_, sql_dir, expected, code=code)
    for name, path in written.items():
        print_text(f"wrote {path}")


def _expected_snapshot(env_, dsn, loaded):
    """The schema the migrations produce, built on --dsn's server or an embedded one."""
    from shipshape.engine import shadow
    from shipshape.targets import Target

    if dsn:
        return shadow.shadow_snapshot(Target(env_, dsn, "--dsn"), loaded)
    return shadow.scratch_snapshot(env_, loaded)
