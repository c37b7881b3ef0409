"""Rehearsing seeds: every declared row upserted into the schema the migrations produce,
inside a transaction that the caller rolls back (the shadow's), before anything is applied.

Why a rehearsal and not a type table: whether `"eight"` fits a column is PostgreSQL's
decision (an integer, a domain with a CHECK, an enum, a NOT NULL, a foreign key to another
seed's rows), so the rows are written exactly as `apply` writes them, in file order, to a
database that has the migrated schema and nothing else. What fails is reported as
`file:line`, the value's own line when one value is to blame.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from shipshape import db
from shipshape.engine.seeds.model import Seed, show_value
from shipshape.engine.seeds.statements import adapt, runs, upsert


def problems(conn: psycopg.Connection, seeds: list[Seed]) -> list[str]:
    """Every seed upserted in its own savepoint, kept for the next seeds (a foreign key
    to an earlier file's rows holds, as in apply). Call inside a transaction that is
    rolled back. Returns one `file:line: ...` per problem; never raises for SQL."""
    found: list[str] = []
    for seed in seeds:
        try:
            with conn.transaction():
                found += _seed_problems(conn, seed)
        except psycopg.Error as exc:  # only a bug of ours: each statement has its savepoint
            found.append(f"{seed.path}: {db.server_message(exc)}")
    return found


def _seed_problems(conn: psycopg.Connection, seed: Seed) -> list[str]:
    columns = _column_types(conn, seed.table)
    if columns is None:
        return [(f"{seed.where(0)}: table {seed.table} does not exist in the schema the "
                 f"migrations produce")]
    unknown = [(i, c) for i, row in enumerate(seed.rows) for c in row if c not in columns]
    if unknown:
        return [f"{seed.where(i, c)}: table {seed.table} has no column {c!r} in the schema "
                f"the migrations produce" for i, c in unknown]
    found: list[str] = []
    index = 0
    for names, rows in runs(seed):
        statement = upsert(seed, names, sql.SQL(", ").join(sql.Placeholder() * len(names)),
                           returning=False)
        params = [[adapt(row[c]) for c in names] for row in rows]
        if not _fails(conn, statement, params):
            index += len(rows)
            continue
        for offset, (row, values) in enumerate(zip(rows, params, strict=True)):
            reason = _fails(conn, statement, [values])
            if reason:
                found.append(_blame(conn, seed, index + offset, row, columns, reason))
        index += len(rows)
    return found


def _fails(conn: psycopg.Connection, statement, params: list) -> str | None:
    """Upsert the rows in a savepoint (kept when they all pass); the server's reason when
    one fails."""
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(statement, params)
        return None
    except psycopg.Error as exc:
        return db.server_message(exc)


def _blame(conn, seed: Seed, index: int, row: dict, columns: dict[str, str],
           reason: str) -> str:
    """The value of a failing row to blame (one that its column's type refuses), else
    the row with the server's reason."""
    for column, value in row.items():
        cast_error = _cast_error(conn, value, columns[column])
        if cast_error:
            return (f"{seed.where(index, column)}: {column}: {show_value(value)} is not a "
                    f"valid {columns[column]} (the type the migrations give "
                    f"{seed.table}.{column}): {cast_error}")
    return f"{seed.where(index)}: row {seed.describe_key(seed.key_of(row))}: {reason}"


def _cast_error(conn, value, type_name: str) -> str | None:
    if value is None:
        return None
    try:
        with conn.transaction():
            conn.execute(sql.SQL("SELECT CAST(%s AS {})").format(sql.SQL(type_name)),
                         [adapt(value)])
        return None
    except psycopg.Error as exc:
        return db.server_message(exc)


def _column_types(conn: psycopg.Connection, table: str) -> dict[str, str] | None:
    """name -> type (format_type) of the table's columns; None when it does not exist."""
    rows = conn.execute(db.query("seed_columns"),
                        {"table": db.identifier(table).as_string(conn)}).fetchall()
    if not rows or not rows[0][0]:
        return None
    return {name: type_ for _, name, type_, _ in rows if name is not None}
