"""shipshape's own SQL, in shipshape/queries/*.sql: SQL lives in .sql files, not in Python."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def query(name: str) -> str:
    """A query from shipshape/queries/<name>.sql; SQL lives in .sql files, not in Python."""
    return resources.files("shipshape").joinpath("queries", f"{name}.sql").read_text()


@cache
def statement(name: str) -> str:
    """query(name) without its leading comment lines (a header for readers): the
    statement alone, to compose with psycopg.sql or to show in a plan."""
    lines = query(name).splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        lines.pop(0)
    return "\n".join(lines).strip()
