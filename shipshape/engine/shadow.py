"""The shadow database: the schema that migrations produce on an empty database, as a
catalog snapshot, to compare a live schema with (verify, baseline, render, runbooks).

It is built in a scratch database on the target's own server (same version, same
extensions available), or on an embedded scratch server when the target refuses CREATE
DATABASE or when there is no target at all (render without --dsn): the one place in the
engine that uses scratch servers. The snapshot is cached in the state directory by the
migrations' checksums and the server's major version, so a warm verify builds nothing.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from shipshape import db
from shipshape.adapters import embedded
from shipshape.engine import catalog, guard, history, migrations
from shipshape.progress import Progress
from shipshape.settings import Environment
from shipshape.targets import Target

CATALOG_FORMAT = 1  # bump when catalog.snapshot's shape changes, to invalidate caches
# One build per cache key at a time in this process: a fleet's threads verifying many
# databases of one tree wait for the first build instead of each building its own.
_BUILDS: dict[str, threading.Lock] = {}
_BUILDS_GUARD = threading.Lock()


def shadow_snapshot(target: Target, applied: list[migrations.Migration],
                    progress: Progress | None = None) -> dict:
    """The catalog that `applied` produce on an empty database, cached by their checksums.

    Built in a scratch database on the target's own server (same version, same
    extensions available), or on an embedded server when the target refuses CREATE DATABASE.
    """
    progress = progress or Progress()
    if not applied:
        return {}  # diff() reads a missing section as empty
    cache = _cache_path(target, applied)
    with _BUILDS_GUARD:
        building = _BUILDS.setdefault(str(cache), threading.Lock())
    with building:
        if cache.exists():
            progress.info(f"shadow snapshot from cache ({cache.name})")
            return json.loads(cache.read_text())
        snapshot = _build(target, applied, progress)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps(snapshot, sort_keys=True))
        tmp.replace(cache)
        return snapshot


def scratch_snapshot(env: Environment, applied: list[migrations.Migration],
                     progress: Progress | None = None) -> dict:
    """shadow_snapshot without a target: built on an embedded scratch server."""
    with embedded.scratch_server() as admin_dsn:
        return shadow_snapshot(Target(env, admin_dsn, "embedded scratch server"), applied,
                               progress)


def _cache_path(target: Target, applied: list[migrations.Migration]) -> Path:
    """Where the snapshot of `applied` on target's server version is cached."""
    conn = db.connect(target, purpose="shadow", autocommit=True)
    try:
        major = conn.info.server_version // 10000
    finally:
        conn.close()
    key = migrations.sha256(json.dumps(
        [CATALOG_FORMAT, major, [(m.version, m.checksum) for m in applied]]))
    return embedded.state_dir() / "cache" / f"shadow-{key[:32]}.json"


def _build(target: Target, applied, progress: Progress) -> dict:
    try:
        return _snapshot_on(target, target.dsn, applied)
    except psycopg.errors.InsufficientPrivilege:
        progress.info("target refuses CREATE DATABASE: building the shadow on an embedded server")
    with embedded.scratch_server() as admin_dsn:
        return _snapshot_on(target, admin_dsn, applied)


def _snapshot_on(target: Target, admin_dsn: str, applied) -> dict:
    """Create a scratch database on admin_dsn's server, apply `applied` to it as the
    engine does, snapshot it, and drop it again."""
    name = f"shipshape_shadow_{uuid.uuid4().hex[:12]}"
    admin = db.connect(Target(target.env, admin_dsn, target.source), purpose="shadow",
                       autocommit=True)
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            shadow = Target(target.env, make_conninfo(admin_dsn, dbname=name), "shadow")
            with db.connect(shadow, purpose="shadow") as conn:
                history.ensure_history(conn)
                watcher = guard.Guard(conn)  # one catalog read for the whole build
                for migration in applied:
                    migrations.apply(conn, target.env, migration, applied_by="shadow",
                                     watcher=watcher)
                return db.read_only(conn, lambda: catalog.snapshot(conn))
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
    finally:
        admin.close()
