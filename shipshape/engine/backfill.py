"""Batched backfills: a data migration that runs in many short transactions.

A migration that says `-- shipshape:backfill` is one UPDATE, DELETE or INSERT ... SELECT
that touches at most a batch of rows per run (a LIMIT in it, e.g. `LIMIT {{
env.backfill_batch_size }}`) and only rows that still need it (its WHERE no longer
matches a row once done). The engine runs it again and again, each run in its own
transaction with the env's timeouts, until a run touches no row, then records the
migration. So no lock is held for longer than one batch (the schema change it belongs to
ran, and committed, in an earlier migration), writers interleave between batches, a
kill loses at most the batch under way, and the next deploy resumes where it stopped:
the migration is still pending, and the rows done no longer match.

What the statement is, is decided by PostgreSQL's grammar (pglast), never by its text;
whether it converges is checked as it runs: more batches than the table could need is
an error, not an endless loop.
"""

from __future__ import annotations

import time

import psycopg
from pglast import ast, parse_sql
from pglast.parser import ParseError

from shipshape import db
from shipshape.engine.lockrules import walk
from shipshape.errors import ConfigError, SQLFailed
from shipshape.settings import Environment

DIRECTIVE = "backfill"
_KINDS = (ast.UpdateStmt, ast.DeleteStmt, ast.InsertStmt)


def check(path, rendered: str) -> None:
    """Refuse (exit 5) a backfill that is not one data statement with a LIMIT."""
    try:
        statements = [raw.stmt for raw in parse_sql(rendered)]
    except ParseError as error:
        raise ConfigError(f"{path}: not valid SQL: {error}.") from None
    if len(statements) != 1 or not isinstance(statements[0], _KINDS):
        raise ConfigError(
            f"{path}: a `-- shipshape:backfill` migration is one UPDATE, DELETE or INSERT ... "
            f"SELECT (found {len(statements)} statement(s)); put schema changes in the "
            f"migration before it.")
    if not any(isinstance(node, ast.SelectStmt) and node.limitCount is not None
               for node in walk(statements[0])):
        raise ConfigError(
            f"{path}: a `-- shipshape:backfill` statement must take one batch per run: select "
            f"its rows with a LIMIT (e.g. `WHERE id IN (SELECT id FROM t WHERE <not done> "
            f"LIMIT {{{{ env.backfill_batch_size }}}})`).")


def run(conn: psycopg.Connection, env: Environment, migration, *, step=None) -> int:
    """Run the batches until one touches no row; returns the rows touched. Each batch
    commits on its own; the caller records the migration afterwards."""
    total, batches = 0, 0
    limit = _batch_limit(conn, migration)
    started = time.monotonic()
    while True:
        try:
            with conn.transaction():
                db.set_local_timeouts(conn, env)
                touched = conn.execute(migration.sql).rowcount
        except psycopg.errors.LockNotAvailable:
            raise
        except psycopg.Error as exc:
            raise SQLFailed(
                f"Backfill {migration.name} failed in batch {batches + 1} at {migration.path}: "
                f"{db.server_message(exc, env)}. The {batches} batch(es) before it "
                f"({total} rows) are committed; the migration stays pending, and "
                f"`invoke deploy --env {env.name}` resumes after the fix.") from None
        if touched <= 0:
            return total
        total, batches = total + touched, batches + 1
        if step is not None:
            step.note(f"batch {batches}: {total} rows, {time.monotonic() - started:.1f}s")
        if batches > limit:
            raise SQLFailed(
                f"Backfill {migration.name} ran {batches} batches ({total} rows) without "
                f"finishing: its statement keeps matching rows it has done. Make its WHERE "
                f"exclude done rows, then `invoke deploy --env {env.name}`.")


def _batch_limit(conn: psycopg.Connection, migration) -> int:
    """More batches than one per row of the largest table in the database is no progress."""
    rows = conn.execute(db.query("largest_table_rows")).fetchone()[0]
    db.end_read(conn)
    return 2 * rows + 1000
