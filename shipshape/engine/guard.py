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
locked, since PostgreSQL locks every relation a statement changes, whoever issues it.

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
    columns: dict[int, tuple[str, str]]  # attnum -> (name, type)


_KINDS = {"r": "table", "p": "table", "f": "foreign table", "v": "view",
          "m": "materialized view"}


def snapshot(conn: psycopg.Connection) -> dict[int, Relation]:
    """Every user relation before the migration, by oid."""
    rows = conn.execute(db.query("guard/before")).fetchall()
    return {oid: Relation(name, kind, filenode, has_rows, deleted, _columns(columns))
            for oid, name, kind, filenode, has_rows, deleted, columns in rows}


def _columns(columns) -> dict[int, tuple[str, str]]:
    return {number: (name, type_) for number, name, type_ in columns}


def losses(conn: psycopg.Connection, before: dict[int, Relation]) -> list[str]:
    """What the transaction lost of what existed before it, one line per object."""
    found = []
    for oid, present, filenode, empty, deleted, columns in conn.execute(db.query("guard/after")):
        old = before.get(oid)
        if old is None:  # created by this migration, or not a user relation
            continue
        what = _KINDS.get(old.kind, "relation")
        if not present:
            found.append(f"dropped {what} {old.name}")
            continue
        now = _columns(columns)
        for number, (name, type_) in old.columns.items():
            if number not in now:
                found.append(f"dropped column {old.name}.{name} ({type_})")
            elif now[number][1] != type_:
                found.append(f"changed the type of column {old.name}.{now[number][0]} "
                             f"from {type_} to {now[number][1]}")
        if deleted > old.deleted:
            found.append(f"deleted {deleted - old.deleted} row(s) from {what} {old.name}")
        elif filenode != old.filenode and empty and old.has_rows:
            found.append(f"emptied {what} {old.name}: its storage was replaced and holds "
                         f"no rows (TRUNCATE, or a rewrite)")
    return found


@contextmanager
def watch(conn: psycopg.Connection, *, declared: bool, what: str, path, command: str
          ) -> Iterator[None]:
    """Around a migration's SQL, inside its transaction: refuse (exit 3) what it lost
    without declaring it. Raising inside the caller's transaction rolls it back, its
    history row with it. An error in the SQL itself passes through unchecked."""
    if declared:
        yield
        return
    before = snapshot(conn)
    yield
    found = losses(conn, before)
    if found:
        raise Refused(
            f"{what} ({path}) lost data it does not declare: it has no "
            f"`-- shipshape:destructive`. Its transaction was rolled back: nothing of it "
            f"was applied. The text of the tree did not show it, so it comes from code that "
            f"runs with it (a function defined in the database, a trigger, dynamic SQL). "
            f"Find that statement and remove it, or declare the migration destructive after "
            f"review, then rerun `{command}`:",
            details=found,
        )
