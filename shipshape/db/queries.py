"""shipshape's own SQL, in shipshape/queries/*.sql: SQL lives in .sql files, not in Python."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def query(name: str) -> str:
    """A query from shipshape/queries/<name>.sql; SQL lives in .sql files, not in Python."""
    return resources.files("shipshape").joinpath("queries", f"{name}.sql").read_text()
