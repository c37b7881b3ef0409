"""Applying seeds: every upsert in one transaction, with the env's timeouts."""

from __future__ import annotations

import psycopg
from psycopg import sql

from shipshape import db
from shipshape.engine.seeds.model import Seed, SeedResult, describe_key
from shipshape.engine.seeds.statements import adapt, runs, upsert
from shipshape.errors import SQLFailed
from shipshape.settings import Environment


def apply(conn: psycopg.Connection, env: Environment, seeds: list[Seed]) -> list[SeedResult]:
    """Upsert every seed in ONE transaction, with env's timeouts; nothing is deleted.

    A SQL error rolls everything back and raises SQLFailed (exit 6) naming the file and
    the row. A lock_timeout is retried like migrations, then raises Busy (exit 4).
    """
    if not seeds:
        return []

    def work():
        with conn.transaction():
            db.set_local_timeouts(conn, env)
            return [_apply_seed(conn, env, seed) for seed in seeds]

    return db.retry_on_lock_timeout(
        conn, env, work, what="Seeding",
        then=f"run `invoke db.seed --env {env.name}` again; nothing was seeded.")


def _apply_seed(conn: psycopg.Connection, env: Environment, seed: Seed) -> SeedResult:
    inserted = updated = 0
    for columns, rows in runs(seed):
        statement = upsert(seed, columns, sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                           returning=True)
        params = [[adapt(row[c]) for c in columns] for row in rows]
        try:
            with conn.transaction():  # a savepoint
                was_inserted = _execute(conn, statement, params)
        except psycopg.errors.LockNotAvailable:
            raise
        except psycopg.Error as exc:
            failing = None
            if not isinstance(exc, psycopg.errors.QueryCanceled):
                failing = _failing_row(conn, statement, params)
            row = rows[failing] if failing is not None else None
            raise _sql_failed(env, seed, row, exc) from None
        inserted += sum(was_inserted)
        updated += len(was_inserted) - sum(was_inserted)
    return SeedResult(seed.path, seed.table, inserted, updated,
                      len(seed.rows) - inserted - updated)


def _execute(conn: psycopg.Connection, statement, params: list) -> list[bool]:
    """Run the upsert for every row; per row that it wrote, whether it inserted it."""
    found = []
    with conn.cursor() as cur:
        cur.executemany(statement, params, returning=True)
        while True:
            found += [bool(was_inserted) for (was_inserted,) in cur.fetchall()]
            if not cur.nextset():
                break
    return found


def _failing_row(conn: psycopg.Connection, statement, params: list) -> int | None:
    """Replay a failed batch row by row in a savepoint that is always rolled back."""
    index = None
    try:
        with conn.transaction(force_rollback=True):
            for index, values in enumerate(params):
                conn.execute(statement, values)
    except psycopg.Error:
        return index
    return None


def _sql_failed(env: Environment, seed: Seed, row: dict | None, exc: psycopg.Error) -> SQLFailed:
    reason = db.server_message(exc, env)
    if isinstance(exc, psycopg.errors.InvalidColumnReference) and "ON CONFLICT" in reason:
        reason += (f"; key [{', '.join(seed.key)}] must be exactly the columns of a unique "
                   f"index or constraint of {seed.table}")
    elif isinstance(exc, psycopg.errors.UndefinedFunction) and "operator" in reason:
        reason += ("; seeds compare a row's values with =, so a seeded column needs a type "
                   "with equality (store JSON in jsonb, not json)")
    where = f"row {describe_key(seed.key_of(row))}" if row is not None else "a row"
    return SQLFailed(
        f"Seed {seed.path} failed at {where} of table {seed.table}: {reason}. "
        f"The seed transaction was rolled back: no row of any seed file was written. Fix the "
        f"seed file or the schema (`invoke db.migrate --env {env.name}`), then run "
        f"`invoke db.seed --env {env.name}` again."
    )
