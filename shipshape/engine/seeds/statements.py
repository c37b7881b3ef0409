"""The SQL that seeds render: the upsert of a row shape (for apply, and with literals for
the psql script), the script itself, and the query that compares declared rows with the
table. The statements are shipshape/queries/seed_*.sql, composed with psycopg.sql.
"""

from __future__ import annotations

import re

from psycopg import sql
from psycopg.types.json import Jsonb

from shipshape import db
from shipshape.engine.seeds.model import Seed
from shipshape.settings import Environment


def adapt(value):
    """A seed value as a query parameter: dicts and lists are jsonb; a float is its decimal
    text, which the column's type parses as it would the literal in a psql script. Sent as
    a float8, 3.5 went into an integer column as 4 (PostgreSQL rounds on assignment), and
    the seed no longer said what the database held."""
    if isinstance(value, dict | list):
        return Jsonb(value)
    return repr(value) if isinstance(value, float) else value


def runs(seed: Seed) -> list[tuple[tuple[str, ...], list[dict]]]:
    """Consecutive rows with the same columns, in file order: one statement shape each."""
    found: list[tuple[tuple[str, ...], list[dict]]] = []
    for row in seed.rows:
        if found and set(found[-1][0]) == set(row):
            found[-1][1].append(row)
        else:
            found.append((tuple(row), [row]))
    return found


def upsert(seed: Seed, columns: tuple[str, ...], values: sql.Composable, *,
           returning: bool) -> sql.Composed:
    """The upsert of one row shape; values are placeholders (apply) or literals (script).

    apply adds RETURNING to count inserted and updated rows; the psql script does not.
    Initial columns are inserted with a new row and never updated: only reference
    columns are in the DO UPDATE.
    """
    others = seed.reference(columns)
    parts = {
        "table": db.identifier(seed.table),
        "columns": sql.SQL(", ").join(map(sql.Identifier, columns)),
        "values": values,
        "key": sql.SQL(", ").join(map(sql.Identifier, seed.key)),
        "returning": sql.SQL(db.statement("seed_returning") if returning else ""),
    }
    if not others:
        return sql.SQL(db.statement("seed_insert_only")).format(**parts)
    return sql.SQL(db.statement("seed_upsert")).format(
        **parts,
        assignments=sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in others),
        current=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in others),
        incoming=sql.SQL(", ").join(
            sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in others),
    )


def script(seeds: list[Seed], *, env: Environment | None = None) -> str:
    """The same upserts as apply, values as quoted literals, for psql (render, --dry-run).

    One transaction; with env, its timeouts are set as apply sets them.
    """
    total = sum(len(seed.rows) for seed in seeds)
    lines = [
        f"-- shipshape seeds: {_count(len(seeds), 'file')}, {_count(total, 'row')}"
        + (f", env {env.name}" if env else "") + ".",
        "-- Idempotent upserts in one transaction; rows are inserted or updated, never deleted.",
        "\\set ON_ERROR_STOP on",
        "BEGIN;",
    ]
    if env is not None:
        for setting in ("lock_timeout", "statement_timeout"):
            value = sql.Literal(getattr(env, setting)).as_string(None)
            lines.append(f"SET LOCAL {setting} = {value};")
    for seed in seeds:
        lines += ["", _comment(f"{seed.path}: table {seed.table}, set {seed.set}, "
                               f"{_count(len(seed.rows), 'row')}, key ({', '.join(seed.key)})")]
        for columns, rows in runs(seed):
            for row in rows:
                values = sql.SQL(", ").join(sql.Literal(adapt(row[c])) for c in columns)
                statement = upsert(seed, columns, values, returning=False)
                lines.append(statement.as_string(None).rstrip() + ";")
    lines += ["", "COMMIT;", ""]
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _comment(text: str) -> str:
    return "-- " + re.sub(r"[\x00-\x1f\x7f]", " ", text)


def compare(seed: Seed, names: tuple[str, ...], rows: list[dict],
            columns: dict[str, tuple[str, bool]]) -> tuple[sql.Composed, list]:
    """The query (and its parameters) that compares rows of one shape with the table.

    Each result row is (row number, found, then per reference column: equal, actual value).
    Initial columns are not compared (nor sent): their values are the users'.
    columns: the table's columns, name -> (type, is json).
    """
    names = tuple(c for c in names if c not in seed.initial)
    others = seed.reference(names)
    alias = {c: sql.Identifier(f"c{i}") for i, c in enumerate(names)}

    def compared(prefix: str, column: str) -> sql.Composable:
        ref = (sql.SQL("x.{}").format(sql.Identifier(column)) if prefix == "x"
               else sql.SQL("d.{}").format(alias[column]))
        # json has no equality operator: compare as jsonb, as the rest of shipshape does
        return sql.SQL("{}::jsonb").format(ref) if columns[column][1] else ref

    select = [sql.SQL("d.n"), sql.SQL("x.{} IS NOT NULL").format(sql.Identifier(seed.key[0]))]
    for column in others:
        select.append(sql.SQL("{} IS NOT DISTINCT FROM {}").format(
            compared("x", column), compared("d", column)))
        select.append(sql.SQL("x.{}").format(sql.Identifier(column)))
    row_values = sql.SQL("({})").format(sql.SQL(", ").join(
        [sql.SQL("CAST(%s AS integer)")]
        + [sql.SQL("CAST(%s AS {})").format(sql.SQL(columns[c][0])) for c in names]))
    query = sql.SQL(db.statement("seed_check")).format(
        select=sql.SQL(", ").join(select),
        values=sql.SQL(", ").join([row_values] * len(rows)),
        aliases=sql.SQL(", ").join([sql.Identifier("n"), *alias.values()]),
        table=db.identifier(seed.table),
        match=sql.SQL(" AND ").join(
            sql.SQL("x.{} = d.{}").format(sql.Identifier(c), alias[c]) for c in seed.key),
    )
    params = [value for n, row in enumerate(rows) for value in [n] + [adapt(row[c]) for c in names]]
    return query, params
