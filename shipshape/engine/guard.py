"""The runtime guard: what a migration did, checked inside its transaction before it commits.

Why, when the parser (engine.sqlparse, via migrations.check_declared) already refused
undeclared destructive SQL: the parser reads the text of the tree, and the text is not
all that runs. A function created outside the tree that deletes, a trigger that fires on
an UPDATE, an extension's event trigger, dynamic SQL built from data: none of them is in
the text. This guard does not parse anything; it asks PostgreSQL what changed:

- a relation (table, view, materialized view, foreign table) that existed before and is
  gone (DROP, DROP ... CASCADE, DROP SCHEMA/OWNED/EXTENSION);
- a column that existed before and is gone, or whose type changed (matched by its
  number, so a rename is not a loss);
- rows deleted from a table that existed before (pg_stat_get_xact_tuples_deleted, the
  backend's own counter, read before and after: DELETE, MERGE ... DELETE, ON DELETE
  CASCADE; it also counts earlier transactions not yet flushed, hence the difference);
- a table that held rows, whose storage file changed (TRUNCATE, or a rewrite) and is
  now empty.

A migration that declares `-- shipshape:destructive` is not watched: it said it may lose
data, and the env's allow_destructive decided whether it runs.

Where the work happens: on the server, in the migration's own message. The snapshot of
every relation is read once per run into a temporary table of the session
(queries/guard/snapshot.sql), and a procedure of the session (queries/guard/install.sql)
runs at the end of each watched migration's message, before its COMMIT: it compares the
relations the transaction locked in a mode that writes rows or changes the relation
(PostgreSQL locks every relation a statement changes, whoever issues it) with the
snapshot, raises when something was lost, and otherwise updates the snapshot for the
next migration. A refusal skips the COMMIT that follows in
the message; so watching costs no round trip, and the snapshot, being a table, rolls back
with a migration that fails. Both objects live in pg_temp: nothing is created in the
database's schemas, and they are gone with the session. They need the TEMPORARY privilege
on the database, which PostgreSQL grants to every role unless it was revoked.

Known blind spots (README, safety): an UPDATE that overwrites values (not destructive by
the project's rule), a rewrite that keeps the type and some rows (ALTER ... TYPE same
type USING ...), a table whose rows the statistics never saw before it was truncated,
sequences, and non-transactional migrations (no transaction to roll back).
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from shipshape import db
from shipshape.errors import ConfigError, Refused

# What the engine sends at the end of a watched migration's message, before COMMIT.
CHECK = db.statement("guard/check")
# The SQLSTATE the check raises with; its DETAIL holds one line per loss.
LOST = "SSG01"


class Guard:
    """The runtime guard for one run of migrations (or rollbacks) on one connection,
    under the migration lock: the snapshot is read once, then kept true by each watched
    migration's own check. A migration the guard does not watch (declared destructive,
    non-transactional, a backfill) may change anything: the next one reads it again."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.fresh = False  # whether the session's snapshot is true for the next migration
        self.installed = False

    def forget(self) -> None:
        self.fresh = False

    def ready(self) -> None:
        """Read the snapshot now, before the run writes anything: a role that may not
        create the guard's temporary table is refused with nothing written."""
        if not self.fresh:
            self._read_snapshot()

    def start(self, *, declared: bool) -> bool:
        """Before a migration's message is built: whether it is watched (then its message
        ends with CHECK), and the snapshot read first when the run keeps none. A migration
        declared destructive is not watched: it may change anything."""
        if declared:
            self.forget()
            return False
        self.ready()
        return True

    def _read_snapshot(self) -> None:
        """In its own transaction (a caller's open one stays open): the session's table
        filled, and the check defined, the first time (it refers to the table's type)."""
        script = db.query("guard/snapshot") + ("" if self.installed else db.query("guard/install"))
        try:
            with db.own_transaction(self.conn):
                self.conn.execute(script)
        except psycopg.errors.InsufficientPrivilege:
            raise _no_temporary(self.conn) from None
        self.fresh = self.installed = True


def refusal(exc: psycopg.Error, *, what: str, path: Path, command: str) -> Refused | None:
    """The refusal (exit 3) that the check's error means, or None for any other error.
    The transaction was rolled back: its history row with it."""
    if _guard_dropped(exc):
        return Refused(
            f"{what} ({path}) dropped the runtime guard's temporary objects (DISCARD TEMP, "
            f"or a DROP in pg_temp), so what it did could not be checked, and it was not "
            f"applied: its transaction was rolled back. A migration has no use for "
            f"discarding the session's temporary objects: remove that statement, then rerun "
            f"`{command}`.")
    if exc.sqlstate != LOST:
        return None
    return Refused(
        f"{what} ({path}) lost data it does not declare: it has no "
        f"`-- shipshape:destructive`. Its transaction was rolled back: nothing of it "
        f"was applied. The text of the tree did not show it, so it comes from code "
        f"that runs with it (a function defined in the database, a trigger, dynamic "
        f"SQL). Find that statement and remove it, or declare the migration "
        f"destructive after review, then rerun `{command}`:",
        details=(exc.diag.message_detail or "").splitlines(),
    )


def _guard_dropped(exc: psycopg.Error) -> bool:
    """The check failed because its own procedure or table is gone from the session."""
    return (isinstance(exc, psycopg.errors.UndefinedFunction | psycopg.errors.UndefinedTable)
            and "shipshape_guard" in (exc.diag.message_primary or ""))


def _no_temporary(conn: psycopg.Connection) -> ConfigError:
    info = conn.info
    return ConfigError(
        f"The runtime guard keeps its snapshot in a temporary table of the session, and "
        f"role {info.user} may not create one in database {info.dbname}. Nothing was "
        f"changed. As a role that may grant it (the database's owner, a superuser), run "
        f"`GRANT TEMPORARY ON DATABASE \"{info.dbname}\" TO \"{info.user}\";`, then run the command again.")
