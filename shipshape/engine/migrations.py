"""Discover, render, plan, apply and roll back migrations (engine.history records them).

A migration is a directory sql/migrations/NNNN_slug/ with migrate.sql.j2 and
rollback.sql.j2. Each applies in its own transaction together with its history row,
unless its rendered SQL says `-- shipshape:no-transaction` (e.g. CREATE INDEX
CONCURRENTLY in prod).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import psycopg

from shipshape import db
from shipshape.engine import guard, history, indexes, irreversible, sqlparse
from shipshape.engine.render import Renderer, directives
from shipshape.errors import ConfigError, Refused, SQLFailed
from shipshape.settings import Environment

_NAME = re.compile(r"^(?P<version>\d{4})_(?P<slug>[a-z0-9][a-z0-9_]*)$")
MIGRATE_FILE = "migrate.sql.j2"
ROLLBACK_FILE = "rollback.sql.j2"


@dataclass(frozen=True)
class Source:
    """A migration directory as found on disk."""

    version: int
    name: str
    directory: Path

    @property
    def migrate_path(self) -> Path:
        return self.directory / MIGRATE_FILE

    @property
    def rollback_path(self) -> Path:
        return self.directory / ROLLBACK_FILE


@dataclass(frozen=True)
class Migration:
    """A migration rendered for one environment."""

    version: int
    name: str
    path: Path
    sql: str
    rollback_sql: str
    checksum: str
    source_checksum: str
    transactional: bool
    destructive: bool
    rollback_transactional: bool
    rollback_destructive: bool
    irreversible: str = ""  # the declared reason of a forward-only migration (no rollback)

    @property
    def rollback_path(self) -> Path:
        return self.path.parent / ROLLBACK_FILE


class State(StrEnum):
    """A migration's state against the history; `db.status --json` shows the value."""

    APPLIED = "applied"
    PENDING = "pending"
    FAILED = "failed"  # its history row says success = false
    CHECKSUM_MISMATCH = "checksum-mismatch"  # its file changed after it ran
    UNKNOWN = "unknown"  # in the history, not in this code


@dataclass(frozen=True)
class Entry:
    """One line of `db.status`."""

    version: int
    name: str
    state: State
    detail: str = ""
    applied_at: object = None


def sha256(text: str) -> str:
    return hashlib.sha256(text.replace("\r\n", "\n").encode()).hexdigest()


# --- discovery and rendering -----------------------------------------------------------

def discover(sql_dir: Path | str) -> list[Source]:
    """Migration directories in version order; refuses malformed and duplicate versions."""
    root = Path(sql_dir) / "migrations"
    if not root.is_dir():
        raise ConfigError(
            f"No migrations directory at {root}. Point --sql-dir at a tree with "
            f"migrations/NNNN_slug/{MIGRATE_FILE}."
        )
    found: dict[int, Source] = {}
    problems = []
    for directory in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        match = _NAME.match(directory.name)
        if not directory.is_dir() or not match:
            problems.append(f"{directory}: not a migration directory named NNNN_slug "
                            f"(four digits, then lower-case letters, digits, underscores)")
            continue
        version = int(match["version"])
        forward_only = irreversible.problems(directory, MIGRATE_FILE, ROLLBACK_FILE)
        problems += forward_only or []
        for required in (MIGRATE_FILE,) if forward_only is not None else (MIGRATE_FILE, ROLLBACK_FILE):
            if not (directory / required).is_file():
                problems.append(f"{directory}: missing {required}")
        if version in found:
            problems.append(f"{directory}: version {version:04d} is also used by "
                            f"{found[version].directory.name}")
            continue
        found[version] = Source(version, directory.name, directory)
    if problems:
        raise Refused(
            f"The migrations in {root} are malformed; fix them before anything is applied.",
            details=problems,
        )
    return [found[v] for v in sorted(found)]


def load(sql_dir: Path | str, env: Environment, renderer: Renderer | None = None) -> list[Migration]:
    """Render every migration (and its rollback) for env."""
    renderer = renderer or Renderer(sql_dir, env)
    return [_render(source, renderer) for source in discover(sql_dir)]


def _render(source: Source, renderer: Renderer) -> Migration:
    reason = irreversible.declared_reason(source.migrate_path)
    for path in (source.migrate_path,) + ((source.rollback_path,) if reason is None else ()):
        if not path.is_file() or not _readable(path):
            raise ConfigError(f"{path}: cannot be read.")
    up = renderer.render(source.migrate_path)
    down = renderer.render(source.rollback_path) if reason is None else ""
    up_directives, down_directives = directives(up), directives(down)
    return Migration(
        version=source.version,
        name=source.name,
        path=source.migrate_path,
        sql=up,
        rollback_sql=down,
        checksum=sha256(up),
        source_checksum=sha256(source.migrate_path.read_text()),
        transactional="no-transaction" not in up_directives,
        destructive="destructive" in up_directives,
        rollback_transactional="no-transaction" not in down_directives,
        rollback_destructive="destructive" in down_directives,
        irreversible=reason or "",
    )


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
        return True
    except OSError:
        return False


def check_declared(todo: list[Migration], env: Environment, *, rollback: bool = False) -> None:
    """The parser's gate, for exactly what is about to run (the pending migrations, or
    the rollbacks): every statement is classified with PostgreSQL's own grammar
    (engine.sqlparse: DO blocks, function bodies and the calls of those that destroy,
    EXECUTE of a constant), and a destructive one in a script that does not declare
    `-- shipshape:destructive` is refused (exit 3) before anything runs. What the grammar
    cannot read (dynamic EXECUTE, another language) counts as destructive. SQL that does
    not parse is a template error (exit 5). Only what runs is parsed, so a run with
    nothing to do parses nothing. The runtime guard (engine.guard) checks again, inside
    each migration's transaction, what the SQL really did.
    """
    for migration in todo:
        sql = migration.rollback_sql if rollback else migration.sql
        path = migration.rollback_path if rollback else migration.path
        try:
            found = sqlparse.destructive_effects(sql)
        except sqlparse.SQLSyntaxError as exc:
            raise ConfigError(
                f"{path}:{exc.line} (line of the rendered SQL) is not valid PostgreSQL: "
                f"{exc.message}. Nothing was changed. Fix the template; "
                f"`invoke render --env {env.name}` shows the SQL it renders to."
            ) from None
        declared = migration.rollback_destructive if rollback else migration.destructive
        if found and not declared:
            raise Refused(
                f"{path} contains destructive SQL but does not declare "
                f"`-- shipshape:destructive`; shipshape never runs undeclared destructive SQL, "
                f"and nothing was changed. Remove the statement, or, after review, declare it "
                f"with a first line `-- shipshape:destructive`; then rerun "
                f"`invoke {'db.rollback' if rollback else 'deploy'} --env {env.name}`:",
                details=[f"{path}:{statement.line}: {_effect(effect)}: "
                         f"{_first_line(statement.text)}" for statement, effect in found],
            )


def _effect(effect: sqlparse.Effect) -> str:
    return f"{effect.action} {effect.object}".strip()


def _first_line(statement: str, width: int = 100) -> str:
    """A statement for a message: its first line, marked when there is more."""
    lines = statement.strip().splitlines() or [""]
    more = len(lines) > 1 or len(lines[0]) > width
    return lines[0][:width] + (" ..." if more else "")


# --- status against the history ---------------------------------------------------

def status(migrations: list[Migration], history: dict[int, dict]) -> list[Entry]:
    """Compare the code's migrations with the history table, version by version."""
    by_version = {m.version: m for m in migrations}
    entries = []
    for version in sorted(set(by_version) | set(history)):
        migration, row = by_version.get(version), history.get(version)
        if row is None:
            entries.append(Entry(version, migration.name, State.PENDING))
        elif migration is None:
            entries.append(Entry(version, row["name"], State.UNKNOWN,
                                 "applied to the database, but not in this code",
                                 row["applied_at"]))
        elif not row["success"]:
            entries.append(Entry(version, migration.name, State.FAILED,
                                 f"failed at {row['applied_at']:%Y-%m-%d %H:%M:%S} by "
                                 f"{row['applied_by']}", row["applied_at"]))
        elif row["checksum"] != migration.checksum or row["name"] != migration.name:
            entries.append(Entry(version, migration.name, State.CHECKSUM_MISMATCH,
                                 f"{migration.path} renders to {migration.checksum[:12]}, "
                                 f"the database ran {row['name']} with {row['checksum'][:12]}",
                                 row["applied_at"]))
        else:
            entries.append(Entry(version, migration.name, State.APPLIED, "", row["applied_at"]))
    return entries


def current_version(history: dict[int, dict]) -> int | None:
    applied = [v for v, row in history.items() if row["success"]]
    return max(applied) if applied else None


def refuse_unsafe(entries: list[Entry], migrations: list[Migration], *, retry_failed: bool = False) -> None:
    """Stop before applying anything when the history disagrees with the code (exit 3)."""
    by_version = {m.version: m for m in migrations}
    unknown = [e for e in entries if e.state == State.UNKNOWN]
    if unknown:
        known_max = max(by_version, default=0)
        raise Refused(
            f"The database is ahead of the code: it has applied "
            f"{', '.join(f'{e.version:04d}_{e.name}' for e in unknown)}, which this code does "
            f"not contain (the code knows up to {known_max:04d}). Deploy the artifact that "
            f"contains those migrations; shipshape will not guess what they did.",
        )
    mismatched = [e for e in entries if e.state == State.CHECKSUM_MISMATCH]
    if mismatched:
        raise Refused(
            "Applied migrations were changed after they ran. Restore the files as they were "
            "and add a new migration for the change:",
            details=[e.detail for e in mismatched],
        )
    failed = [e for e in entries if e.state == State.FAILED]
    if failed and not retry_failed:
        raise Refused(
            f"Migration {failed[0].version:04d}_{failed[0].name} failed part-way "
            f"({failed[0].detail}); it was non-transactional, so some statements may have "
            f"run. Inspect it, then run `invoke db.migrate --retry-failed`.",
        )


def plan(migrations: list[Migration], history: dict[int, dict], to: int | None = None) -> list[Migration]:
    """Migrations to apply, in order, up to and including `to`."""
    todo = [m for m in migrations if m.version not in history or not history[m.version]["success"]]
    if to is not None:
        if to not in {m.version for m in migrations} and to != 0:
            raise ConfigError(f"--to {to}: no migration has version {to:04d}.")
        todo = [m for m in todo if m.version <= to]
    return todo


# --- the operations: migrate and rollback (the caller holds the migration lock) ---------

def migrate(conn: psycopg.Connection, env: Environment, loaded: list[Migration], *,
            to: int | None = None, retry_failed: bool = False, progress=None) -> tuple[int | None, list[Migration]]:
    """Apply what is pending (up to `to`). Returns the version before, and what was applied."""
    from shipshape.progress import Progress

    progress = progress or Progress()
    history.ensure_history(conn)
    recorded = history.read_history(conn)
    refuse_unsafe(status(loaded, recorded), loaded, retry_failed=retry_failed)
    todo = plan(loaded, recorded, to)
    check_declared(todo, env)
    refuse_destructive(env, todo, rollback=False)
    half_built = bool(todo) and indexes.any_invalid(conn)
    watcher = guard.Guard(conn)
    for migration in todo:
        with progress.step(f"migrate {migration.name}") as step:
            rebuilt = _drop_half_built(conn, env, migration, progress) if half_built else ""
            ms = apply(conn, env, migration, applied_by=db.operator(), watcher=watcher)
            step.note(f"{ms} ms in SQL" + (f"; rebuilt {rebuilt}" if rebuilt else ""))
    return current_version(recorded), todo


def _drop_half_built(conn, env: Environment, migration: Migration, progress) -> str:
    """Drop the INVALID indexes this migration creates (a killed or failed CREATE INDEX
    CONCURRENTLY left them), so that it builds them again; says so."""
    dropped = indexes.drop_invalid(conn, env, indexes.created(migration.sql))
    if not dropped:
        return ""
    names = indexes.describe(dropped)
    progress.info(f"{migration.name}: dropped the INVALID index {names}, left by an "
                  f"interrupted or failed CREATE INDEX CONCURRENTLY; the migration builds "
                  f"it again")
    return names


def rollback(conn: psycopg.Connection, env: Environment, loaded: list[Migration], to: int, *,
             progress=None) -> list[Migration]:
    """Roll back every applied migration above `to`, newest first."""
    from shipshape.progress import Progress

    progress = progress or Progress()
    recorded = history.read_history(conn)
    entries = status(loaded, recorded)
    refuse_unsafe(entries, loaded)
    todo = rollback_plan(loaded, recorded, to)
    check_declared(todo, env, rollback=True)
    refuse_destructive(env, todo, rollback=True)
    for migration in todo:
        with progress.step(f"rollback {migration.name}") as step:
            step.note(f"{rollback_one(conn, env, migration)} ms")
    return todo


def rollback_plan(loaded: list[Migration], history: dict[int, dict], to: int) -> list[Migration]:
    if to < 0:
        raise ConfigError(f"--to {to}: must be 0 (everything) or a version.")
    todo = sorted((m for m in loaded if m.version > to and m.version in history),
                  key=lambda m: m.version, reverse=True)
    irreversible.refuse_rollback(todo)
    return todo


def refuse_destructive(env: Environment, todo: list[Migration], *, rollback: bool) -> None:
    """Declared destructive SQL runs only where the env allows it."""
    flagged = [m for m in todo if (m.rollback_destructive if rollback else m.destructive)]
    if flagged and not env.allow_destructive:
        what = "rollback" if rollback else "migration"
        names = ", ".join(m.name for m in flagged)
        raise Refused(
            f"Env {env.name} forbids destructive statements, and the {what} of {names} is "
            f"destructive (it drops or rewrites data). Nothing was changed. After review, and "
            f"only deliberately, rerun with --set allow_destructive=true."
        )


# --- applying --------------------------------------------------------------------------

def apply(conn: psycopg.Connection, env: Environment, migration: Migration, *,
          applied_by: str, watcher: guard.Guard | None = None) -> int:
    """Apply one migration with its history row; returns its duration in ms.

    Transactional migrations retry with backoff when lock_timeout expires; a SQL error
    rolls everything back and names the line of the rendered file (exit 6).
    """
    watcher = watcher or guard.Guard(conn)
    if not migration.transactional:
        watcher.forget()  # unwatched: it may change anything

        def work():
            return _apply_autocommit(conn, env, migration, applied_by)
    else:
        def work():
            return _apply_in_transaction(conn, env, migration, applied_by, watcher)
    return db.retry_on_lock_timeout(
        conn, env, work,
        what=f"Migration {migration.name}", then="deploy again; nothing of it was applied.")


def _apply_in_transaction(conn, env, migration, applied_by, watcher: guard.Guard) -> int:
    started = time.monotonic()
    try:
        with conn.transaction():
            db.set_local_timeouts(conn, env)
            with watcher.watch(declared=migration.destructive, path=migration.path,
                               what=f"Migration {migration.name}",
                               command=f"invoke deploy --env {env.name}"):
                conn.execute(migration.sql)
            duration = int((time.monotonic() - started) * 1000)
            history.record(conn, migration, applied_by=applied_by, duration_ms=duration)
        watcher.committed()
    except psycopg.errors.LockNotAvailable:
        raise
    except psycopg.Error as exc:
        raise _sql_failed(conn, env, migration, migration.sql, exc) from None
    return duration


def _apply_autocommit(conn, env, migration, applied_by) -> int:
    """Statement by statement, as CREATE INDEX CONCURRENTLY requires."""
    started = time.monotonic()
    with db.autocommit(conn, env):
        for statement in split(migration.sql):
            try:
                conn.execute(statement)
            except psycopg.errors.LockNotAvailable:
                raise
            except psycopg.Error as exc:
                duration = int((time.monotonic() - started) * 1000)
                history.record(conn, migration, applied_by=applied_by, duration_ms=duration,
                               success=False)
                raise _sql_failed(conn, env, migration, migration.sql, exc, statement=statement,
                                  partial=True) from None
        duration = int((time.monotonic() - started) * 1000)
        try:
            _refuse_invalid_indexes(conn, env, migration)
        except SQLFailed:
            history.record(conn, migration, applied_by=applied_by, duration_ms=duration,
                           success=False)
            raise
        history.record(conn, migration, applied_by=applied_by, duration_ms=duration)
    return duration


def _refuse_invalid_indexes(conn, env: Environment, migration: Migration) -> None:
    """A non-transactional migration is never recorded as a success while an index it
    creates is INVALID (e.g. CREATE INDEX CONCURRENTLY IF NOT EXISTS skipped a half-built
    one). A transactional CREATE INDEX builds a valid index or fails."""
    bad = indexes.invalid(conn, indexes.created(migration.sql))
    if bad:
        raise SQLFailed(
            f"Migration {migration.name} ran, but the index {indexes.describe(bad)} it creates "
            f"is INVALID (half-built), so it is not recorded as a success. Fix what stops the "
            f"build (duplicates under UNIQUE, a timeout), then run "
            f"`invoke deploy --env {env.name}`: it drops the INVALID index and builds it again.")


def rollback_one(conn: psycopg.Connection, env: Environment, migration: Migration) -> int:
    """Run a migration's rollback and delete its history row, in one transaction unless
    the rollback declares no-transaction (DROP INDEX CONCURRENTLY)."""
    started = time.monotonic()

    def work():
        if migration.rollback_transactional:
            with conn.transaction():
                db.set_local_timeouts(conn, env)
                with guard.Guard(conn).watch(
                        declared=migration.rollback_destructive, path=migration.rollback_path,
                        what=f"The rollback of {migration.name}",
                        command=(f"invoke db.rollback --env {env.name} "
                                 f"--to {migration.version - 1}")):
                    conn.execute(migration.rollback_sql)
                history.delete(conn, migration.version)
        else:
            with db.autocommit(conn, env):
                for statement in split(migration.rollback_sql):
                    conn.execute(statement)
                history.delete(conn, migration.version)

    try:
        db.retry_on_lock_timeout(conn, env, work, what=f"Rollback of {migration.name}",
                                       then="run the rollback again.")
    except psycopg.Error as exc:
        raise _sql_failed(conn, env, migration, migration.rollback_sql, exc,
                          path=migration.rollback_path,
                          partial=not migration.rollback_transactional) from None
    return int((time.monotonic() - started) * 1000)


# --- errors ----------------------------------------------------------------------------

def split(sql_text: str) -> list[str]:
    """Split a script into statements as PostgreSQL's grammar does (engine.sqlparse)."""
    return sqlparse.split(sql_text)


def _sql_failed(conn, env, migration, script, exc, *, statement=None, partial=False, path=None):
    path = path or migration.path
    reason = db.server_message(exc, env)
    line = _error_line(conn, script, exc, statement)
    where = f"{path} (rendered line {line})" if line else str(path)
    if partial and path == migration.path:
        tail = ("It is non-transactional: the statements before the failing one ran; its "
                "history row is marked failed. Fix it, then run `invoke db.migrate --retry-failed`.")
    elif partial:
        tail = ("The rollback is non-transactional: the statements before the failing one ran; "
                "the migration stays recorded as applied. Fix it and run the rollback again.")
    else:
        tail = "Its transaction was rolled back: nothing of it was applied."
    what = "Migration" if path == migration.path else "Rollback of"
    return SQLFailed(f"{what} {migration.name} failed at {where}: {reason}. {tail} "
                     f"See the rendered SQL with `invoke render --env {env.name}`.")


def _error_line(conn, script: str, exc: psycopg.Error, statement: str | None) -> int | None:
    """The 1-based line in the rendered script where the failing statement starts."""
    position = exc.diag.statement_position
    if statement is not None:
        offset = script.find(statement)
        if position and offset >= 0:
            return script.count("\n", 0, offset + int(position) - 1) + 1
        return script.count("\n", 0, offset) + 1 if offset >= 0 else None
    if position:
        return script.count("\n", 0, int(position) - 1) + 1
    return _locate_by_replay(conn, script)


def _locate_by_replay(conn: psycopg.Connection, script: str) -> int | None:
    """Errors without a position (constraint violations, RAISE): replay the statements
    one by one in a transaction that is always rolled back, to find the failing one."""
    offset = 0
    try:
        with conn.transaction(force_rollback=True):
            for statement in split(script):
                offset = script.find(statement, offset)
                try:
                    conn.execute(statement)
                except psycopg.Error:
                    return script.count("\n", 0, max(offset, 0)) + 1
    except psycopg.Error:
        return None
    return None
