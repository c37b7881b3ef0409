"""shipshape.history: the table of applied migrations, and the one writer of its rows.

Every row is written here, whoever applies the migration: the engine (`record_inline`,
sent with the migration in one message, or `record`, in the migration's own transaction), the shadow build, baseline and the runbooks (`record`, or
`record_sql` for a plan that shows it), and the psql script that `render` writes
(`record_script`). All of them render ONE statement, queries/history_insert.sql: the
engine fills its fields with parameters, the psql script with literals and with what
psql itself knows (the time since the transaction began, its role). Rolling back
deletes the row (`delete`, `delete_script`), likewise from one statement.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Protocol

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from shipshape import db

# The fields of queries/history_insert.sql, each a {placeholder} there.
FIELDS = ("version", "name", "checksum", "source_checksum", "duration_ms", "applied_by",
          "success", "phase", "lock_ok")
# The columns of a row as read_history returns it (queries/history_read.sql).
COLUMNS = ("version", "name", "checksum", "source_checksum", "applied_at", "duration_ms",
           "applied_by", "success", "phase", "lock_ok")
# What a row of a history older than these columns reads as (bootstrap adds them).
_ADDED_LATER = {"phase": "expand", "lock_ok": ""}

# What the psql script records in the fields the engine measures itself.
_PSQL_DURATION = "(extract(epoch FROM clock_timestamp() - now()) * 1000)::integer"
_PSQL_APPLIED_BY = "'psql:' || current_user"


class Recorded(Protocol):
    """What a history row records of a migration (engine.migrations.Migration is one)."""

    version: int
    name: str
    checksum: str
    source_checksum: str
    # Optional: `phase` ("expand" or "contract", engine.migrations.Phase; expand when
    # absent) and `lock_ok` (the lock findings it accepts, (rule, reason) pairs).


# --- the schema and reading --------------------------------------------------------------

def schema_sql() -> str:
    """The statements that create shipshape's schema and tables (idempotent)."""
    return db.query("bootstrap").strip()


def ensure_history(conn: psycopg.Connection) -> None:
    """Create shipshape's schema and tables. Call while holding the migration lock."""
    with conn.transaction():
        conn.execute(db.query("bootstrap"))


def read_history(conn: psycopg.Connection) -> dict[int, dict]:
    """Applied (and failed) migrations by version; empty when never deployed."""
    rows = []
    if db.table_exists(conn, "shipshape.history"):
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(db.query("history_read")).fetchall()
    if not conn.autocommit:
        conn.commit()
    if rows and _ADDED_LATER.keys() - rows[0].keys():
        rows = [{**_ADDED_LATER, **row} for row in rows]
    return {row["version"]: row for row in rows}


# --- writing -------------------------------------------------------------------------------

def row(migration: Recorded, *, applied_by: str, duration_ms: int = 0,
        success: bool = True) -> dict:
    """The values of one history row, by field."""
    return {"version": migration.version, "name": migration.name,
            "checksum": migration.checksum, "source_checksum": migration.source_checksum,
            "duration_ms": duration_ms, "applied_by": applied_by, "success": success,
            "phase": str(getattr(migration, "phase", "expand")),
            "lock_ok": "\n".join(f"{rule}: {reason}"
                                 for rule, reason in getattr(migration, "lock_ok", ()))}


def projected(migration: Recorded, *, applied_by: str) -> dict:
    """The row record() writes for an applied migration, as read_history returns it: for
    planning against the history that a step will leave."""
    values = {**row(migration, applied_by=applied_by), "applied_at": datetime.now(UTC)}
    return {column: values[column] for column in COLUMNS}


def record(conn: psycopg.Connection, migration: Recorded, *, applied_by: str,
           duration_ms: int = 0, success: bool = True) -> None:
    """Write migration's row (insert, or replace the row of its version) in conn's
    current transaction."""
    conn.execute(_insert(), row(migration, applied_by=applied_by, duration_ms=duration_ms,
                                success=success))


def record_sql(conn: psycopg.Connection, migration: Recorded, *, applied_by: str,
               duration_ms: int = 0, success: bool = True) -> str:
    """The statement record() runs, its values as literals: the exact SQL, for a plan."""
    return psycopg.ClientCursor(conn).mogrify(_insert(), row(
        migration, applied_by=applied_by, duration_ms=duration_ms, success=success))


def record_inline(migration: Recorded, *, applied_by: str) -> str:
    """The statement record() runs, with literals (without its semicolon), to be sent in
    one message with the migration itself: the duration is the server's time since the
    transaction began, as in the psql script."""
    values = {field: sql.Literal(value) for field, value in row(
        migration, applied_by=applied_by, success=True).items()}
    values.update(duration_ms=sql.SQL(_PSQL_DURATION))
    return _statement("history_insert").format(**values).as_string(None)


def record_script(migration: Recorded, since: str | None = None) -> str:
    """The statement record() runs, as the psql script runs it (without its semicolon):
    the duration is the time since the transaction began, or since the timestamp in the
    psql variable `since` (a backfill's batches each commit: its record's transaction is
    not where it began), applied_by psql's role."""
    values = {field: sql.Literal(value) for field, value in row(
        migration, applied_by="", success=True).items()}
    duration = _PSQL_DURATION if since is None else (
        f"(extract(epoch FROM clock_timestamp() - :'{since}'::timestamptz) * 1000)::integer")
    values.update(duration_ms=sql.SQL(duration), applied_by=sql.SQL(_PSQL_APPLIED_BY))
    return _statement("history_insert").format(**values).as_string(None)


def rerecord(conn: psycopg.Connection, migration: Recorded, *, note: str) -> int:
    """Give an applied migration's row the (edited) file's checksums, appending note (who,
    and why) to applied_by, in conn's current transaction. The caller has proved that the
    edit changes nothing. Returns the rows changed (0: not applied successfully)."""
    return conn.execute(_rerecord(), _rerecord_values(migration, note)).rowcount


def rerecord_sql(conn: psycopg.Connection, migration: Recorded, *, note: str) -> str:
    """The statement rerecord() runs, its values as literals: the exact SQL, for a plan."""
    return psycopg.ClientCursor(conn).mogrify(_rerecord(), _rerecord_values(migration, note))


def _rerecord_values(migration: Recorded, note: str) -> dict:
    return {"version": migration.version, "name": migration.name, "checksum": migration.checksum,
            "source_checksum": migration.source_checksum, "note": f"; re-recorded {note}"}


def delete(conn: psycopg.Connection, version: int) -> None:
    """Remove the row of a rolled-back migration, in conn's current transaction."""
    conn.execute(_delete(), {"version": version})


def delete_script(migration: Recorded) -> str:
    """delete() as the psql rollback script runs it (without its semicolon)."""
    return _statement("history_delete").format(
        version=sql.Literal(migration.version)).as_string(None)


@cache
def _statement(name: str) -> sql.SQL:
    return sql.SQL(db.statement(name))


@cache
def _insert() -> str:
    return _statement("history_insert").format(
        **{f: sql.Placeholder(f) for f in FIELDS}).as_string(None)


@cache
def _rerecord() -> str:
    return _statement("history_rerecord").format(
        **{f: sql.Placeholder(f) for f in ("version", "name", "checksum", "source_checksum",
                                             "note")}
    ).as_string(None)


@cache
def _delete() -> str:
    return _statement("history_delete").format(
        version=sql.Placeholder("version")).as_string(None)
