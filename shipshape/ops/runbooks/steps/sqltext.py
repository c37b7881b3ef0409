"""The exact SQL a plan shows: shipshape's own queries with their parameters as
literals, and migrations as the blocks a migrate or reapply step runs."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    import psycopg

    from shipshape.engine.migrations import Migration


@cache
def statement(name: str) -> str:
    """A shipshape/queries/<name>.sql statement without its comment lines."""
    from shipshape.db import query

    return "\n".join(line for line in query(name).splitlines()
                     if not line.lstrip().startswith("--")).strip()


def mogrify(conn: psycopg.Connection, name: str, params: dict) -> str:
    """statement(name) with its parameters as literals: the exact SQL, for a plan."""
    import psycopg

    return psycopg.ClientCursor(conn).mogrify(statement(name), params)


def migration_blocks(todo: Iterable[Migration], what: str = "") -> str:
    """Each migration's SQL under a header saying how it runs, and its history row."""
    parts = []
    for m in todo:
        mode = "transaction" if m.transactional else "no transaction"
        parts.append(f"-- ==== {what}{m.name} ({mode}{', destructive' if m.destructive else ''}) "
                     f"====\n{m.sql.strip()}\n-- + its row in shipshape.history, in the same "
                     f"{'transaction' if m.transactional else 'session'}")
    return "\n\n".join(parts)
