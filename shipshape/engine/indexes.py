"""Half-built indexes: what a killed or failed CREATE INDEX CONCURRENTLY leaves behind.

PostgreSQL builds a concurrent index in several transactions; when the build fails (a
duplicate under UNIQUE, a timeout, a killed session) the index stays in the catalog,
INVALID: never used by queries, yet maintained on every write. Run again, the migration
then fails with "already exists", or, written with IF NOT EXISTS, skips the index and
would be recorded as a success without it. So, for a migration about to run (pending,
or failed and retried): an INVALID index it creates is dropped first, and rebuilt by
the migration itself; and after it ran, none of its indexes may be INVALID.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from shipshape import db
from shipshape.engine import sqlparse
from shipshape.engine.lockrules import dotted
from shipshape.settings import Environment


def created(migration_sql: str) -> list[str]:
    """The indexes a migration creates, by name (see sqlparse.created_indexes)."""
    return sqlparse.created_indexes(migration_sql)


def any_invalid(conn: psycopg.Connection) -> bool:
    """Whether any index of the database is INVALID; ends the read."""
    found = conn.execute(db.query("indexes_any_invalid")).fetchone()[0]
    db.end_read(conn)
    return found


def invalid(conn: psycopg.Connection, names: list[str]) -> list[tuple[str, str]]:
    """Those of names that exist and are INVALID, as (schema, index); read in the
    caller's transaction, if one is open."""
    rows = conn.execute(db.query("indexes_invalid"), {"names": names}).fetchall() if names else []
    return [(schema, name) for schema, name in rows]


def describe(found: list[tuple[str, str]]) -> str:
    return ", ".join(dotted(schema, name) for schema, name in found)


def drop_invalid(conn: psycopg.Connection, env: Environment, names: list[str]
                 ) -> list[tuple[str, str]]:
    """Drop the INVALID ones of names (DROP INDEX CONCURRENTLY: the table's writes go on);
    returns what was dropped. An INVALID index holds nothing a query uses."""
    found = invalid(conn, names)
    db.end_read(conn)
    if found:
        with db.autocommit(conn, env):
            for schema, name in found:
                conn.execute(sql.SQL(db.statement("index_drop_invalid")).format(
                    index=sql.Identifier(schema, name)))
    return found
