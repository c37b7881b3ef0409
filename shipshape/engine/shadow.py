"""The shadow database: the schema that migrations produce on an empty database, as a
catalog snapshot, to compare a live schema with (verify, baseline, render, runbooks), and
the place where seeds are rehearsed before a deploy applies anything.

Read-only, provably: the shadow changes nothing outside its own scratch database. On the
target's own server (same version, same extensions available) every migration runs in
ONE transaction in a scratch database; the catalog is snapshotted inside it, and then it
is rolled back. So a migration's cluster-wide statements (ALTER ROLE x LOGIN, ALTER ROLE
... SET, CREATE ROLE, GRANT ... TO a role) run against a transaction that never commits,
and a login that a DBA disabled since stays disabled. Non-transactional migrations run
there too, rendered without CONCURRENTLY (decided on pglast's parse tree, never on the
text). A tree that truly cannot run in one transaction (VACUUM, ALTER SYSTEM, CREATE
TABLESPACE, an enum value used in the transaction that adds it) is built on an embedded
scratch server instead, as is a tree whose target refuses CREATE DATABASE, or a render
without a target: the one place in the engine that uses scratch servers.

No leftovers: scratch databases and servers carry their owner's pid, start time and host
in their name (adapters.owners); they are removed on every exit path (SIGTERM and SIGINT
become exceptions while they exist), and every shadow build first removes those whose
owner is gone (killed with SIGKILL), so the next command cleans up after a killed one.
`leftovers` lists them for doctor without removing anything.

The snapshot is cached in the state directory by the migrations' checksums and the
server's major version, so a warm verify builds nothing; a seed rehearsal that passed is
cached by the same key plus the seed rows.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from shipshape import db
from shipshape.adapters import embedded, owners
from shipshape.engine import catalog, guard, history, migrations, seeds
from shipshape.errors import Busy, ConfigError
from shipshape.progress import Progress
from shipshape.settings import Environment
from shipshape.targets import Target

CATALOG_FORMAT = 1  # bump when catalog.snapshot's shape changes, to invalidate caches
SCRATCH_PREFIX = "shipshape_shadow_"
# One build per cache key at a time in this process: a fleet's threads verifying many
# databases of one tree wait for the first build instead of each building its own.
_BUILDS: dict[str, threading.Lock] = {}
_BUILDS_GUARD = threading.Lock()
# Errors that say "not inside a transaction block": the tree is built on a scratch server,
# where each migration commits as a deploy would.
_NEEDS_OWN_SERVER = (psycopg.errors.ActiveSqlTransaction, psycopg.errors.UnsafeNewEnumValueUsage)


def shadow_snapshot(target: Target, applied: list[migrations.Migration],
                    progress: Progress | None = None, *, sweep: bool = True,
                    conn: psycopg.Connection | None = None) -> dict:
    """The catalog that `applied` produce on an empty database, cached by their checksums.

    sweep: first remove this host's scratch databases and servers whose owner is gone
    (doctor passes False: it reports them instead). conn: the caller's connection to
    target, if it has one; the sweep and the cache key read through it instead of
    connecting again (a warm verify then opens no connection of its own)."""
    progress = progress or Progress()
    if sweep:
        remove_leftovers(target, progress, conn=conn)
    if not applied:
        return {}  # diff() reads a missing section as empty
    cache = _cache_path(target, applied, conn)
    with _lock_for(cache):
        if cache.exists():
            progress.info(f"shadow snapshot from cache ({cache.name})")
            return json.loads(cache.read_text())
        snapshot, _ = _build(target, applied, progress, sweep=sweep)
        _write(cache, json.dumps(snapshot, sort_keys=True))
        return snapshot


def scratch_snapshot(env: Environment, applied: list[migrations.Migration],
                     progress: Progress | None = None) -> dict:
    """shadow_snapshot without a target: built on an embedded scratch server."""
    with embedded.scratch_server() as admin_dsn:
        return shadow_snapshot(Target(env, admin_dsn, "embedded scratch server"), applied,
                               progress)


def check_seeds(target: Target, applied: list[migrations.Migration],
                declared: list[seeds.Seed], progress: Progress | None = None, *,
                sweep: bool = True, conn: psycopg.Connection | None = None) -> None:
    """Rehearse every declared seed row in the shadow of `applied` (inside its rolled-back
    transaction) and raise ConfigError (exit 5) naming file:line for each value or row
    the migrated schema refuses. Nothing is applied anywhere. sweep and conn: as for
    shadow_snapshot."""
    progress = progress or Progress()
    if not declared:
        return
    if sweep:
        remove_leftovers(target, progress, conn=conn)
    cache = _cache_path(target, applied, conn)
    passed = cache.with_name(f"seeds-{cache.stem[len('shadow-'):]}-{_seeds_key(declared)}.ok")
    with _lock_for(cache):  # a fleet's threads wait for the first rehearsal, then reuse it
        if passed.exists():
            return
        from shipshape.engine.seeds import preflight as seed_preflight

        snapshot, found = _build(target, applied, progress,
                                 probe=lambda conn: seed_preflight.problems(conn, declared))
        _write(cache, json.dumps(snapshot, sort_keys=True))
        if not found:
            _write(passed, "ok\n")
            return
    env = target.env.name
    fix = (f"Fix the seed file (or the migration that makes the column), then check "
           f"again with `invoke db.seed --env {env} --dry-run`.")
    head = ("A seed value does not fit the schema the migrations produce" if len(found) == 1
            else f"{len(found)} seed values or rows do not fit the schema the migrations "
                 f"produce")
    raise ConfigError(f"{head}; nothing was applied. {fix}", details=found)


def check_seeds_scratch(env: Environment, applied: list[migrations.Migration],
                        declared: list[seeds.Seed], progress: Progress | None = None) -> None:
    """check_seeds without a target: rehearsed on an embedded scratch server."""
    if not declared:
        return
    with embedded.scratch_server() as admin_dsn:
        check_seeds(Target(env, admin_dsn, "embedded scratch server"), applied, declared,
                    progress)


# --- leftovers ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Leftover:
    """A scratch object whose owner is gone."""

    kind: str  # "database" or "server"
    name: str
    description: str


def leftovers(target: Target) -> list[Leftover]:
    """This host's scratch databases on target's server and scratch servers whose owner is
    gone. Reads only."""
    found = [Leftover("database", name, f"scratch database {name} on {target.describe()} "
                                        f"of {owner.describe()}, which is gone")
             for name, owner in _orphaned_databases(target)]
    found += [Leftover("server", str(s.path), s.describe()) for s in embedded.leftover_servers()]
    return found


def remove_leftovers(target: Target, progress: Progress | None = None, *,
                     conn: psycopg.Connection | None = None) -> list[str]:
    """Drop this host's scratch databases whose owner is gone, stop and delete orphaned
    scratch servers. Returns what was removed. conn: the caller's connection to target,
    to look for them through (a connection of its own is opened only to drop one)."""
    progress = progress or Progress()
    removed = [s.describe() for s in embedded.remove_leftover_servers()]
    orphans = _orphaned_databases(target, conn)
    if orphans:
        with _admin(target) as admin:
            for name, _ in orphans:
                try:
                    _drop(admin, name)
                    removed.append(f"scratch database {name}")
                except psycopg.Error as exc:  # another role's: doctor keeps reporting it
                    progress.info(f"could not drop leftover {name}: {db.server_message(exc)}")
    for what in removed:
        progress.info(f"removed a leftover of a killed shadow build: {what}")
    return removed


def _orphaned_databases(target: Target, conn: psycopg.Connection | None = None
                        ) -> list[tuple[str, owners.Owner]]:
    if conn is None:
        with _admin(target) as admin:
            rows = admin.execute(db.query("shadow_databases")).fetchall()
    else:
        with db.own_transaction(conn):
            rows = conn.execute(db.query("shadow_databases")).fetchall()
    found = []
    for name, _ in rows:
        owner = owners.parse(name[len(SCRATCH_PREFIX):])
        if owner is not None and owner.local and not owner.alive():
            found.append((name, owner))
    return found


# --- building -----------------------------------------------------------------------------

def _build(target: Target, applied, progress: Progress,
           probe: Callable[[psycopg.Connection], list] | None = None, *,
           sweep: bool = True) -> tuple[dict, list]:
    """(snapshot, what probe found) of `applied`, on the target's server in one
    rolled-back transaction, else on an embedded scratch server."""
    try:
        return _in_scratch_database(target, target.dsn, applied, probe, one_transaction=True)
    except psycopg.errors.InsufficientPrivilege:
        progress.info("target refuses CREATE DATABASE: building the shadow on an embedded server")
    except _NeedsOwnServer as exc:
        progress.info(f"{exc.migration.name} cannot run inside a transaction ({exc.reason}): "
                      f"building the shadow on an embedded server")
    with embedded.scratch_server(sweep=sweep) as admin_dsn:
        return _in_scratch_database(target, admin_dsn, applied, probe, one_transaction=False)


class _NeedsOwnServer(Exception):
    def __init__(self, migration: migrations.Migration, reason: str):
        super().__init__(reason)
        self.migration, self.reason = migration, reason


def _in_scratch_database(target: Target, admin_dsn: str, applied, probe, *,
                         one_transaction: bool) -> tuple[dict, list]:
    """Create a scratch database named for its owner on admin_dsn's server, build the
    shadow in it, and drop it again on every way out (SIGTERM included)."""
    name = f"{SCRATCH_PREFIX}{owners.me().marker}_{uuid.uuid4().hex[:6]}"
    with owners.terminate_as_exception(), _admin(Target(target.env, admin_dsn, target.source)
                                                 ) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            shadow = Target(target.env, make_conninfo(admin_dsn, dbname=name), "shadow")
            with db.connect(shadow, purpose="shadow") as conn:
                if one_transaction:
                    return _in_one_transaction(conn, target.env, applied, probe)
                return _committed(conn, target.env, applied, probe)
        finally:
            _drop(admin, name)


def _in_one_transaction(conn: psycopg.Connection, env: Environment, applied, probe
                        ) -> tuple[dict, list]:
    """Every migration in one transaction, each in a savepoint; snapshot and probe inside
    it; then roll it all back, so that nothing of it reaches the cluster."""
    with conn.transaction(force_rollback=True):
        # The env's timeouts, as a deploy has them: on the live cluster a migration's
        # ALTER ROLE can wait on a DBA's open transaction, and a read-only verify must not
        # wait for ever.
        db.set_local_timeouts(conn, env)
        history.ensure_history(conn)
        for migration in applied:
            _apply_in_savepoint(conn, env, migration)
        snapshot = catalog.snapshot(conn)
        found = probe(conn) if probe else []
    return snapshot, found


def _apply_in_savepoint(conn: psycopg.Connection, env: Environment,
                        migration: migrations.Migration) -> None:
    """Not watched by the runtime guard: in one transaction, every relation built so far
    stays locked, so the guard's check (over the relations the transaction locked) would
    grow with each migration; and a shadow starts empty, so only rows the tree itself
    inserted could be lost. The deploy watches every migration it applies."""
    statements = ([migration.sql] if migration.transactional
                  else without_concurrently(migration.sql))
    for statement in statements:
        try:
            with conn.transaction():
                conn.execute(statement)
        except _NEEDS_OWN_SERVER as exc:
            raise _NeedsOwnServer(migration, db.server_message(exc)) from None
        except psycopg.errors.LockNotAvailable:
            raise Busy(
                f"Building the shadow of {migration.name} on the target's server waited "
                f"longer than lock_timeout ({env.lock_timeout}) for a lock that another "
                f"session holds: its statement touches what the whole cluster shares (a "
                f"role, say). Nothing "
                f"was changed. Run the command again once that session ends; "
                f"`invoke doctor --env {env.name}` names long transactions.") from None
        except psycopg.Error as exc:
            raise migrations.failure(conn, env, migration, exc,
                                     statement=None if migration.transactional
                                     else statement) from None


def _committed(conn: psycopg.Connection, env: Environment, applied, probe
               ) -> tuple[dict, list]:
    """On a scratch server of our own: each migration commits as a deploy commits it (the
    server is thrown away); snapshot and probe in a transaction that is rolled back."""
    history.ensure_history(conn)
    watcher = guard.Guard(conn)  # one catalog read for the whole build
    for migration in applied:
        migrations.apply(conn, env, migration, applied_by="shadow", watcher=watcher)
    with conn.transaction(force_rollback=True):
        snapshot = catalog.snapshot(conn)
        found = probe(conn) if probe else []
    return snapshot, found


def without_concurrently(script: str) -> list[str]:
    """A non-transactional migration's statements as they can run inside a transaction:
    CREATE INDEX, DROP INDEX, REINDEX, REFRESH MATERIALIZED VIEW and DETACH PARTITION
    without CONCURRENTLY (the same objects result; only the locking differs). Decided on
    PostgreSQL's parse tree; statements it does not change keep their text."""
    from pglast import parse_sql
    from pglast.stream import RawStream

    statements = []
    for raw in parse_sql(script):
        end = raw.stmt_location + raw.stmt_len if raw.stmt_len else len(script)
        text = script[raw.stmt_location:end]
        if _drop_concurrently(raw.stmt):
            text = RawStream()(raw.stmt)
        statements.append(text)
    return statements


def _drop_concurrently(node) -> bool:
    """Clear node's CONCURRENTLY in place; whether it had one."""
    from pglast import ast

    if isinstance(node, ast.IndexStmt | ast.DropStmt | ast.RefreshMatViewStmt) and node.concurrent:
        node.concurrent = False
        return True
    if isinstance(node, ast.ReindexStmt) and node.params:
        kept = tuple(p for p in node.params if p.defname != "concurrently")
        if len(kept) != len(node.params):
            node.params = kept or None
            return True
    if isinstance(node, ast.AlterTableStmt):
        changed = False
        for cmd in node.cmds or ():
            part = getattr(cmd, "def_", None)
            if isinstance(part, ast.PartitionCmd) and part.concurrent:
                part.concurrent = False
                changed = True
        return changed
    return False


# --- plumbing -----------------------------------------------------------------------------

def _admin(target: Target) -> psycopg.Connection:
    return db.connect(target, purpose="shadow", autocommit=True)


def _drop(admin: psycopg.Connection, name: str) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _lock_for(cache: Path) -> threading.Lock:
    with _BUILDS_GUARD:
        return _BUILDS.setdefault(str(cache), threading.Lock())


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _cache_path(target: Target, applied: list[migrations.Migration],
                conn: psycopg.Connection | None = None) -> Path:
    """Where the snapshot of `applied` on target's server version is cached. The version
    is what the server said when the connection opened: conn's, when the caller has one
    to target (no query), else a connection's of our own."""
    if conn is None:
        with _admin(target) as admin:
            major = admin.info.server_version // 10000
    else:
        major = conn.info.server_version // 10000
    key = migrations.sha256(json.dumps(
        [CATALOG_FORMAT, major, [(m.version, m.checksum) for m in applied]]))
    return embedded.state_dir() / "cache" / f"shadow-{key[:32]}.json"


def _seeds_key(declared: list[seeds.Seed]) -> str:
    return migrations.sha256(json.dumps(
        [[str(s.path), s.table, list(s.key), list(s.rows)] for s in declared],
        sort_keys=True, default=str))[:16]
