"""db.*: the deploy's operations one at a time, for operators and runbooks."""

from __future__ import annotations

from shipshape.tasks._task import environment, progress, target, task


@task(iterable=["set_"])
def status(c, env="local", dsn=None, sql_dir=None, json_=False, set_=None):
    """List migrations and their state (applied, pending, failed, changed, unknown).

    States: applied, pending, failed (a non-transactional migration stopped part-way),
    checksum-mismatch (the file changed after it ran), unknown (in the database, not in
    this code). Exit 0 when everything is applied, 2 otherwise.
    """
    from shipshape import db
    from shipshape.console import emit_json, print_table
    from shipshape.engine import migrations
    from shipshape.engine.history import read_history
    from shipshape.errors import ProblemsFound

    tgt, sql_dir = target(env, dsn, set_, sql_dir)
    loaded = migrations.load(sql_dir, tgt.env)
    with db.connect(tgt, purpose="status") as conn:
        entries = migrations.status(loaded, read_history(conn))
    if json_:
        emit_json({"target": tgt.describe(), "migrations": entries})
    else:
        print_table(f"migrations of {tgt.describe()}", ["version", "name", "state", "applied at", "detail"],
                    [[f"{e.version:04d}", e.name, e.state,
                      f"{e.applied_at:%Y-%m-%d %H:%M:%S}" if e.applied_at else "", e.detail]
                     for e in entries])
    problems = [e for e in entries if e.state != "applied"]
    if problems:
        raise ProblemsFound(f"{len(problems)} migration(s) not cleanly applied: "
                            + ", ".join(f"{e.version:04d} {e.state}" for e in problems)
                            + f". Run `invoke deploy --env {tgt.env.name}`.")


@task(iterable=["set_"], help={
    "to": "stop after this version (default: the newest)",
    "retry_failed": "re-run a non-transactional migration that failed part-way",
})
def migrate(c, env="local", dsn=None, sql_dir=None, to=None, dry_run=False, retry_failed=False,
            set_=None):
    """Apply pending migrations, each in its own transaction, under the deploy lock."""
    from shipshape import db
    from shipshape.console import print_text
    from shipshape.engine import bundle, migrations
    from shipshape.engine.history import read_history
    from shipshape.engine.render import Renderer

    tgt, sql_dir = target(env, dsn, set_, sql_dir)
    renderer = Renderer(sql_dir, tgt.env)
    loaded = migrations.load(sql_dir, tgt.env, renderer)
    to = int(to) if to is not None else None
    with db.connect(tgt, purpose="migrate") as conn:
        if dry_run:
            history = read_history(conn)
            migrations.refuse_unsafe(migrations.status(loaded, history), loaded,
                                     retry_failed=retry_failed)
            print_text(bundle.migrate_script(renderer, migrations.plan(loaded, history, to)))
            return
        with db.advisory_lock(conn, tgt.env.migration_lock_wait):
            before, applied = migrations.migrate(conn, tgt.env, loaded, to=to,
                                                 retry_failed=retry_failed, progress=progress())
    now = max((m.version for m in applied), default=before)
    print_text(f"{len(applied)} migration(s) applied; {tgt.env.name} is at version {now or 0:04d}.")


@task(iterable=["set_"], help={"to": "roll back every migration above this version (0: all)"})
def rollback(c, to, env="local", dsn=None, sql_dir=None, yes=False, dry_run=False, set_=None):
    """Roll back applied migrations above --to, newest first.

    Needs --yes outside local. Destructive rollbacks are refused in envs that forbid them.
    """
    from shipshape import db
    from shipshape.console import print_text
    from shipshape.engine import bundle, migrations
    from shipshape.engine.history import read_history
    from shipshape.engine.render import Renderer
    from shipshape.errors import Refused

    tgt, sql_dir = target(env, dsn, set_, sql_dir)
    renderer = Renderer(sql_dir, tgt.env)
    loaded = migrations.load(sql_dir, tgt.env, renderer)
    to = int(to)
    with db.connect(tgt, purpose="rollback") as conn:
        if dry_run:
            todo = migrations.rollback_plan(loaded, read_history(conn), to)
            print_text(bundle.rollback_script(renderer, todo))
            return
        if not tgt.env.is_local and not yes:
            raise Refused(f"Rolling back {tgt.env.name} to {to:04d} changes its schema; "
                          f"review `--dry-run` first, then rerun with --yes.")
        with db.advisory_lock(conn, tgt.env.migration_lock_wait):
            done = migrations.rollback(conn, tgt.env, loaded, to, progress=progress())
    print_text(f"{len(done)} migration(s) rolled back; {tgt.env.name} is at version {to:04d}.")


@task(iterable=["set_"])
def seed(c, env="local", dsn=None, sql_dir=None, dry_run=False, json_=False, set_=None):
    """Upsert the env's declared seed rows (never deletes anything)."""
    from shipshape import db
    from shipshape.console import emit_json, print_table, print_text
    from shipshape.engine import bundle, seeds
    from shipshape.targets import resolve_target

    env_, sql_dir = environment(env, set_, sql_dir)
    declared = seeds.load(sql_dir, env_)
    if dry_run:  # needs no database: the upserts are the same whatever the rows are
        print_text(bundle.seed_script(declared, env_))
        return
    tgt = resolve_target(env_, dsn)
    with db.connect(tgt, purpose="seed") as conn:
        with db.advisory_lock(conn, tgt.env.migration_lock_wait):
            results = seeds.apply(conn, tgt.env, declared)
    if json_:
        emit_json(results)
        return
    print_table(f"seeds for {tgt.describe()}", ["file", "table", "inserted", "updated", "unchanged"],
                [[r.path.name, r.table, r.inserted, r.updated, r.unchanged] for r in results])


@task(iterable=["set_"])
def verify(c, env="local", dsn=None, sql_dir=None, json_=False, set_=None):
    """Compare the database with the code; exit 2 when anything differs.

    Checks the history, schema drift against a shadow database built from the same
    migrations, seed rows, and data checks. Read-only.
    """
    from shipshape import db
    from shipshape.console import emit_json, print_findings
    from shipshape.engine import verify as verify_

    tgt, sql_dir = target(env, dsn, set_, sql_dir)
    with db.connect(tgt, purpose="verify") as conn:
        findings = verify_.verify(conn, tgt, sql_dir,
                                  progress=progress(quiet=json_))
    if findings:
        from shipshape.errors import ProblemsFound

        if not json_:
            print_findings(findings)
        # With --json, the error handler prints the findings as one JSON document.
        raise ProblemsFound(f"{len(findings)} finding(s) for {tgt.describe()}.", findings=findings)
    if json_:
        emit_json({"target": tgt.describe(), "findings": []})
    else:
        print_findings(findings)


@task(iterable=["set_"], help={"version": "the migration the hand-made schema corresponds to"})
def baseline(c, version, env="local", dsn=None, sql_dir=None, set_=None):
    """Adopt a hand-built database as being at --version, after proving it.

    Records migrations 1..VERSION as applied only when the schema equals what they
    produce; otherwise exits 3 listing the differences.
    """
    from shipshape import db
    from shipshape.console import print_text
    from shipshape.engine import baseline as baseline_
    from shipshape.engine import migrations

    tgt, sql_dir = target(env, dsn, set_, sql_dir)
    loaded = migrations.load(sql_dir, tgt.env)
    with db.connect(tgt, purpose="baseline") as conn:
        with db.advisory_lock(conn, tgt.env.migration_lock_wait):
            adopted = baseline_.baseline(conn, tgt, loaded, int(version), progress=progress())
    print_text(f"Baselined {tgt.env.name} at {int(version):04d}: {len(adopted)} migration(s) "
               f"recorded as applied. Run `invoke deploy --env {tgt.env.name}` for the rest.")
