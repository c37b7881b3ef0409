"""db.*: the deploy's operations one at a time, for operators and runbooks."""

from __future__ import annotations

from shipshape.tasks._task import environment, progress, target, task


@task(iterable=["set_"], help={"all": "list every migration, not a summary of a long history"})
def status(c, env="local", dsn=None, sql_dir=None, json_=False, all_=False, set_=None):
    """List migrations and their state (applied, pending, failed, changed, unknown).

    States: applied, pending, failed (a non-transactional migration stopped part-way),
    checksum-mismatch (the file changed after it ran), unknown (in the database, not in
    this code). A long history is summarised: the count in each state, every migration
    that is not applied, and the last few applied; --all lists every one, and --json
    always has the full list. Exit 0 when everything is applied, 2 otherwise.
    """
    from shipshape import commands
    from shipshape.console import emit_json, print_table, print_text
    from shipshape.errors import ProblemsFound

    tgt, sql_dir = target(env, dsn, set_, sql_dir, start=False)
    result = commands.status(tgt, sql_dir)
    if json_:
        emit_json({"target": result.target, "migrations": result.migrations})
    else:
        shown = result.migrations if all_ else result.summary()
        print_table(f"migrations of {result.target}",
                    ["version", "name", "state", "applied at", "detail"],
                    [[f"{e.version:04d}", e.name, e.state,
                      f"{e.applied_at:%Y-%m-%d %H:%M:%S}" if e.applied_at else "", e.detail]
                     for e in shown])
        if len(shown) < len(result.migrations):
            print_text(f"{len(result.migrations)} migrations: "
                       + ", ".join(f"{n} {state}" for state, n in result.counts.items())
                       + f". {len(result.migrations) - len(shown)} other applied ones are "
                       f"not shown: `invoke db.status --all` lists every migration.")
    try:
        result.check()
    except ProblemsFound as error:
        error.reported = json_  # the JSON document above is the output: no second one
        raise


@task(iterable=["set_"], help={
    "to": "stop after this version (default: the newest)",
    "retry_failed": "re-run a non-transactional migration that failed part-way",
})
def migrate(c, env="local", dsn=None, sql_dir=None, to=None, dry_run=False, retry_failed=False,
            set_=None):
    """Apply pending migrations, each in its own transaction, under the deploy lock."""
    from shipshape import commands
    from shipshape.console import print_final, print_text

    tgt, sql_dir = target(env, dsn, set_, sql_dir)
    result = commands.migrate(tgt, sql_dir, to=int(to) if to is not None else None,
                              retry_failed=retry_failed, dry_run=dry_run,
                              progress=None if dry_run else progress())
    if dry_run:
        print_text(result.script)
        return
    print_final(f"{len(result.applied)} migration(s) applied; {result.env} is at version "
               f"{result.version:04d}.")


@task(iterable=["set_"], required=["to"],
      help={"to": "roll back every migration above this version (0: all)"})
def rollback(c, to=None, env="local", dsn=None, sql_dir=None, yes=False, dry_run=False, set_=None):
    """Roll back applied migrations above --to, newest first.

    Needs --yes outside local. Destructive rollbacks are refused in envs that forbid them.
    """
    from shipshape import commands
    from shipshape.console import print_final, print_text

    tgt, sql_dir = target(env, dsn, set_, sql_dir)
    result = commands.rollback(tgt, sql_dir, int(to), yes=yes, dry_run=dry_run,
                               progress=None if dry_run else progress())
    if dry_run:
        print_text(result.script)
        return
    print_final(f"{len(result.rolled_back)} migration(s) rolled back; {result.env} is at "
               f"version {result.version:04d}.")


@task(iterable=["set_"])
def seed(c, env="local", dsn=None, sql_dir=None, dry_run=False, json_=False, set_=None):
    """Upsert the env's declared seed rows (never deletes anything)."""
    from shipshape import commands
    from shipshape.console import emit_json, print_table, print_text
    from shipshape.targets import resolve_target

    env_, sql_dir = environment(env, set_, sql_dir)
    if dry_run:  # the upserts are the same whatever the rows are; the rows are rehearsed
        print_text(commands.seed_script(env_, sql_dir, _dry_run_target(env_, dsn),
                                        progress=progress()))
        return
    tgt = resolve_target(env_, dsn)
    results = commands.seed(tgt, sql_dir)
    if json_:
        emit_json(results)
        return
    print_table(f"seeds for {tgt.describe()}", ["file", "table", "inserted", "updated", "unchanged"],
                [[r.path.name, r.table, r.inserted, r.updated, r.unchanged] for r in results])


def _dry_run_target(env_, dsn):
    """The server to rehearse seeds on: env's database when one is known and running
    (never started, never looked up through Pulumi); else None, an embedded scratch one."""
    import os

    from shipshape.targets import NOT_RUNNING, resolve_target

    if not (dsn or os.environ.get("DATABASE_URL") or env_.is_local):
        return None
    found = resolve_target(env_, dsn, start=False)
    return None if found.source == NOT_RUNNING else found


@task(iterable=["set_"])
def lint(c, env="local", dsn=None, sql_dir=None, json_=False, set_=None):
    """The lock each pending statement would take, weighed against the live tables.

    Each row: migration and line, the table, the lock mode, whether it scans or rewrites
    the table under it, its live rows and size, other sessions on it, and the env's
    verdict (refused, accepted by `-- shipshape:lock-ok`, or ok) with the safe rewrite.
    Read-only. Exit 0 when deploy would not refuse any of them, 2 otherwise.
    """
    from shipshape import commands
    from shipshape.console import emit_json, print_table, print_text
    from shipshape.errors import ShipshapeError

    tgt, sql_dir = target(env, dsn, set_, sql_dir, start=False)
    result = commands.lint(tgt, sql_dir)
    if json_:
        emit_json({"target": result.target, "env": result.env, "findings": [
            {**vars(f), "refused": f.refused} for f in result.findings]})
    else:
        print_table(f"locks of the pending migrations on {result.target}",
                    ["migration", "line", "table", "lock", "work", "rows", "MB", "verdict"],
                    [[f.migration, f.line, f.relation, f.mode,
                      "rewrite" if f.rewrites else "scan" if f.scans else "catalog",
                      "new" if f.rows is None else "?" if f.rows < 0 else f"{f.rows:,}",
                      "" if f.bytes is None else f"{f.bytes / 1048576:,.0f}",
                      "REFUSED" if f.refused else f"lock-ok: {f.accepted}" if f.accepted
                      else "ok"] for f in result.findings])
        for finding in result.refused:
            print_text(f"✗ {finding.describe()}: {finding.safe_rewrite}")
    try:
        result.check()
    except ShipshapeError as error:
        error.reported = json_  # the JSON above already carries the findings
        raise


@task(iterable=["set_"])
def verify(c, env="local", dsn=None, sql_dir=None, json_=False, set_=None):
    """Compare the database with the code; exit 2 when anything differs.

    Checks the history, schema drift against a shadow database built from the same
    migrations, seed rows, and data checks. Read-only.
    """
    from shipshape import commands
    from shipshape.console import emit_json, print_findings
    from shipshape.errors import ProblemsFound

    sql_dir_flag = sql_dir
    tgt, sql_dir = target(env, dsn, set_, sql_dir, start=False)
    result = commands.verify(tgt, sql_dir, progress=progress(quiet=json_),
                             command_options={"sql_dir": sql_dir_flag})
    if not json_:
        print_findings(result.findings)
        result.check()
        return
    # The one JSON document, findings or not; objects declared unmanaged appear only here.
    document = {"target": result.target, "findings": result.findings, "ignored": result.ignored}
    try:
        result.check()
    except ProblemsFound as error:
        emit_json({"error": str(error), "exit_code": error.exit_code, **document})
        error.reported = True
        raise
    emit_json(document)


@task(iterable=["set_"], help={
    "version": "the migration the hand-made schema corresponds to",
    "from_": "read the version from this tool's history instead: prisma, flyway, dbmate or "
             "golang-migrate (after db.import)",
})
def baseline(c, version=None, env="local", dsn=None, sql_dir=None, from_=None, dry_run=False,
             set_=None):
    """Adopt a hand-built database as being at --version, after proving it.

    Records migrations 1..VERSION as applied only when the schema equals what they
    produce; otherwise exits 3 listing the differences. With --from TOOL, VERSION is what
    the tool's own history (_prisma_migrations, flyway_schema_history, schema_migrations)
    says is applied, mapped through the imported-from directives; the proof is the same.
    --dry-run proves it and prints the history rows it would record; it records nothing.
    """
    from shipshape import commands
    from shipshape.console import print_final, print_text
    from shipshape.errors import ConfigError

    if (version is None) == (from_ is None):
        raise ConfigError("db.baseline needs exactly one of --version N or --from TOOL.")
    tgt, sql_dir = target(env, dsn, set_, sql_dir)
    if from_ is not None:
        adopted = commands.baseline_from(tgt, sql_dir, from_, progress=progress(),
                                         dry_run=dry_run)
        version = adopted[-1].version
    else:
        adopted = commands.baseline(tgt, sql_dir, int(version), progress=progress(),
                                    dry_run=dry_run)
    if dry_run:
        from shipshape.engine import history

        print_text(f"-- db.baseline --dry-run: proven, the schema is what migrations "
                   f"0001..{int(version):04d} produce; nothing was recorded. It would record:\n"
                   + "\n".join(history.record_script(m) + ";" for m in adopted))
        return
    print_final(f"Baselined {tgt.env.name} at {int(version):04d}: {len(adopted)} migration(s) "
               f"recorded as applied. Run `invoke deploy --env {tgt.env.name}` for the rest.")


@task(name="import", positional=["path"], required=["from_", "path"], help={
    "from_": "the tool the migrations come from: prisma, flyway, dbmate or golang-migrate",
    "path": "the tool's migrations directory",
    "out": "the SQL tree to write into (default: sql/)",
    "dry_run": "print the review and write nothing",
})
def import_(c, path=None, from_=None, out=None, dry_run=False):
    """Convert another tool's migrations into shipshape's layout, in order, and review them.

    The SQL is carried over byte for byte (wrapped so Jinja leaves it alone); each
    migration keeps its foreign version in `-- shipshape:imported-from` for
    `db.baseline --from`. Prints every destructive statement found (and declares it),
    and which migrations have no rollback (declared irreversible). --dry-run writes nothing.
    """
    from shipshape import commands
    from shipshape.console import print_text
    from shipshape.paths import project_root

    result = commands.import_tree(from_, path, out or project_root() / "sql", dry_run=dry_run)
    print_text("\n".join(result.review()))


@task(iterable=["set_"], required=["from_"], help={
    "from_": "the env the database is stamped with now (a re-stamp must name it)",
    "reason": "why the database changes env; recorded with the stamp",
})
def stamp(c, env="local", dsn=None, from_=None, yes=False, reason="", dry_run=False,
          set_=None):
    """Re-stamp which environment a database is (rare, deliberate).

    The first deploy stamps a database with its env; every command that writes refuses
    (exit 3) when --env differs from the stamp. When a database really moves (a staging
    copy becomes dev), re-stamp it: --from names the stamp it has now, --yes confirms.
    """
    from shipshape import commands
    from shipshape.console import print_final, print_text

    tgt, _ = target(env, dsn, set_)
    previous = commands.stamp(tgt, previous=from_, yes=yes, reason=reason, dry_run=dry_run)
    if dry_run:
        print_text(f"Dry run: the database is `{previous}`; it would be stamped "
                   f"`{tgt.env.name}`. Nothing was changed.")
        return
    print_final(f"The database was `{previous}`; it is now stamped `{tgt.env.name}`.")
