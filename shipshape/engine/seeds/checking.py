"""Checking seeds: the declared rows compared with the database, read-only."""

from __future__ import annotations

import psycopg

from shipshape import db
from shipshape.engine.seeds.model import Seed, SeedCheck
from shipshape.engine.seeds.statements import compare, runs

# Parameters per check query stay far below PostgreSQL's 65535.
_CHECK_PARAMS = 20000


def check(conn: psycopg.Connection, seeds: list[Seed]) -> list[SeedCheck]:
    """Compare every declared row with the database; read-only, never raises for SQL.

    Each seed is read in its own savepoint (or transaction), so a missing table or
    column becomes SeedCheck.error and the connection stays usable.
    """
    return [_check_seed(conn, seed) for seed in seeds]


def _check_seed(conn: psycopg.Connection, seed: Seed) -> SeedCheck:
    result = SeedCheck(seed=seed, total=len(seed.rows))
    try:
        with conn.transaction():
            columns = _columns(conn, seed.table)
            if columns is None:
                result.error = (f"table {seed.table} does not exist (declared in {seed.path}); "
                                f"run the migrations that create it (`invoke db.migrate`)")
                return result
            declared = list(dict.fromkeys(c for row in seed.rows for c in row))
            unknown = [c for c in declared if c not in columns]
            if unknown:
                result.error = (f"table {seed.table} has no column "
                                f"{', '.join(map(repr, unknown))} (declared in {seed.path})")
                return result
            for names, rows in runs(seed):
                per_query = max(1, _CHECK_PARAMS // (len(names) + 1))
                for start in range(0, len(rows), per_query):
                    _check_rows(conn, seed, names, rows[start:start + per_query],
                                columns, result)
    except psycopg.Error as exc:
        result.ok, result.missing, result.differing = 0, [], []
        result.error = f"cannot compare with table {seed.table}: {db.server_message(exc)}"
    return result


def _columns(conn: psycopg.Connection, table: str) -> dict[str, tuple[str, bool]] | None:
    """name -> (type, is json) for the table's columns; None when it does not exist."""
    rows = conn.execute(db.query("seed_columns"),
                        {"table": db.identifier(table).as_string(conn)}).fetchall()
    if not rows or not rows[0][0]:
        return None
    return {name: (type_, is_json) for _, name, type_, is_json in rows if name is not None}


def _check_rows(conn, seed: Seed, names: tuple[str, ...], rows: list[dict],
                columns: dict[str, tuple[str, bool]], result: SeedCheck) -> None:
    others = seed.reference(names)
    query, params = compare(seed, names, rows, columns)
    for record in conn.execute(query, params).fetchall():
        row = rows[record[0]]
        key = seed.key_of(row)
        if not record[1]:
            result.missing.append(key)
            continue
        equal = True
        for i, column in enumerate(others):
            if not record[2 + 2 * i]:
                equal = False
                result.differing.append((key, column, row[column], record[3 + 2 * i]))
        result.ok += equal
