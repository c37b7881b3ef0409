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
data, and the env's allow_destructive decided whether it runs. Cost: one catalog query
before (no table lock taken) and one after that reads only the relations the transaction
locked, since PostgreSQL locks every relation a statement changes, whoever issues it. The
engine sends the after-query at the end of the migration's own message, so a watched
migration takes two round trips: its message, then COMMIT.

The full snapshot is read once per run (Guard), then updated from each migration's
after-query, so a run of N migrations costs one query per migration plus one.

Known blind spots (README, safety): an UPDATE that overwrites values (not destructive by
the project's rule), a rewrite that keeps the type and some rows (ALTER ... TYPE same
type USING ...), a table whose rows the statistics never saw before it was truncated,
sequences, and non-transactional migrations (no transaction to roll back).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from shipshape import db
from shipshape.errors import Refused


@dataclass(frozen=True)
class Relation:
    name: str
    kind: str
    filenode: int
    has_rows: bool
    deleted: int  # this backend's unflushed count of deleted rows, before
    columns: str  # one line per column: number, type oid, type modifier, name (tabs)


_KINDS = {"r": "table", "p": "table", "f": "foreign table", "v": "view",
          "m": "materialized view"}


def snapshot(conn: psycopg.Connection) -> dict[int, Relation]:
    """Every user relation before the migration, by oid."""
    rows = conn.execute(db.query("guard/before")).fetchall()
    return {oid: Relation(name, kind, filenode, has_rows, deleted, columns)
            for oid, name, kind, filenode, has_rows, deleted, columns in rows}


def _columns(columns: str) -> dict[int, tuple[str, tuple[int, int]]]:
    """number -> (name, (type oid, type modifier))"""
    found = {}
    for line in columns.splitlines():
        number, type_oid, modifier, name = line.split("\t", 3)
        found[int(number)] = (name, (int(type_oid), int(modifier)))
    return found


# The after-query, sent by the engine at the end of a migration's own message (so that
# the check costs no round trip) and passed back to Guard.check as rows.
AFTER = db.statement("guard/after")


def losses(conn: psycopg.Connection, before: dict[int, Relation], rows=None
           ) -> tuple[list[str], dict[int, Relation]]:
    """What the transaction lost of what existed before it, one line per object; and
    the snapshot after it (before, updated with what it touched). rows: the after-query's
    result when the caller sent it already; else it is run here."""
    found = []
    after = dict(before)
    for (oid, present, name, kind, filenode, has_rows, deleted,
         columns) in (conn.execute(AFTER) if rows is None else rows):
        old = before.get(oid)
        if not present:
            after.pop(oid, None)
        else:
            after[oid] = Relation(name, kind, filenode, has_rows, deleted, columns)
        if old is None:  # created by this migration
            continue
        what = _KINDS.get(old.kind, "relation")
        if not present:
            found.append(f"dropped {what} {old.name}")
            continue
        if columns != old.columns:
            found += _column_losses(conn, old, _columns(old.columns), _columns(columns))
        if deleted > old.deleted:
            found.append(f"deleted {deleted - old.deleted} row(s) from {what} {old.name}")
        elif filenode != old.filenode and not has_rows and old.has_rows:
            found.append(f"emptied {what} {old.name}: its storage was replaced and holds "
                         f"no rows (TRUNCATE, or a rewrite)")
    return found, after


def _column_losses(conn, old: Relation, was: dict, now: dict) -> list[str]:
    found = []
    for number, (name, type_) in was.items():
        if number not in now:
            found.append(f"dropped column {old.name}.{name} ({_type_name(conn, type_)})")
        elif now[number][1] != type_:
            found.append(f"changed the type of column {old.name}.{now[number][0]} from "
                         f"{_type_name(conn, type_)} to {_type_name(conn, now[number][1])}")
    return found


def _type_name(conn, type_: tuple[int, int]) -> str:
    """A type as SQL writes it; only for a message (a dropped domain has no name left)."""
    name = conn.execute(db.query("guard/type_name"),
                        {"type": type_[0], "modifier": type_[1]}).fetchone()[0]
    return name or f"type {type_[0]}, dropped with it"


class Guard:
    """The runtime guard for one run of migrations (or rollbacks) on one connection,
    under the migration lock: the full snapshot is read once, then kept up to date from
    each migration's own after-query (the relations it touched), so that each migration
    costs one query after its SQL, over what it touched, not over the whole schema.
    A migration the guard does not watch (declared destructive, non-transactional) may
    change anything: the next one reads the catalog again."""

    AFTER = AFTER

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.before: dict[int, Relation] | None = None
        self.pending: dict[int, Relation] | None = None

    def forget(self) -> None:
        self.before = self.pending = None

    def committed(self) -> None:
        """The watched transaction committed: its after-snapshot is the next before."""
        self.before, self.pending = self.pending, None

    def start(self, *, declared: bool) -> bool:
        """Before a migration's SQL is sent: whether it is watched, and if so the snapshot
        to compare with (read now, in its own short read, unless one is kept from the
        run). A migration declared destructive is not watched: it may change anything,
        so the next one reads the catalog again."""
        self.pending = None
        if declared:
            self.forget()
            return False
        if self.before is None:
            with db.own_read(self.conn):  # the migration's own message opens its transaction
                self.before = snapshot(self.conn)
        return True

    def hook(self, *, declared: bool, what: str, path, command: str):
        """start(); when the migration is watched, its before-commit check, called with the
        rows of AFTER sent at the end of the migration's own message; else None."""
        if not self.start(declared=declared):
            return None
        return lambda rows: self.check(what=what, path=path, command=command, rows=rows)

    def check(self, *, what: str, path, command: str, rows=None) -> None:
        """After a watched migration's SQL, inside its transaction, before COMMIT (the
        engine's before-commit hook): refuse (exit 3) what it lost without declaring it.
        Raising there rolls the transaction back, its history row with it. rows: the
        after-query's result, when it was sent with the migration (AFTER)."""
        found, after = losses(self.conn, self.before or {}, rows)
        if found:
            raise Refused(
                f"{what} ({path}) lost data it does not declare: it has no "
                f"`-- shipshape:destructive`. Its transaction was rolled back: nothing of it "
                f"was applied. The text of the tree did not show it, so it comes from code "
                f"that runs with it (a function defined in the database, a trigger, dynamic "
                f"SQL). Find that statement and remove it, or declare the migration "
                f"destructive after review, then rerun `{command}`:",
                details=found,
            )
        self.pending = after

    @contextmanager
    def watch(self, *, declared: bool, what: str, path, command: str) -> Iterator[None]:
        """start() and check() around SQL the caller runs itself, inside its transaction
        (the shadow's savepoints). An error in the SQL itself passes through unchecked."""
        watched = self.start(declared=declared)
        yield
        if watched:
            self.check(what=what, path=path, command=command)
