"""Per-environment timeouts, and the retry after a lock timeout."""

from __future__ import annotations

import time

import psycopg
from psycopg import sql

from shipshape.db.locks import describe_holders, table_lock_holders
from shipshape.errors import Busy
from shipshape.settings import Environment, parse_duration


def local_timeouts_sql(env: Environment) -> str:
    """The statements that apply the env's timeouts to the current transaction only, as
    one line of SQL (to be sent with other statements in one message)."""
    return sql.SQL("SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {};").format(
        sql.Literal(env.lock_timeout), sql.Literal(env.statement_timeout)).as_string(None)


def set_local_timeouts(conn: psycopg.Connection, env: Environment) -> None:
    """Apply the env's timeouts to the current transaction only (one round trip)."""
    conn.execute(local_timeouts_sql(env))


def set_session_timeouts(conn: psycopg.Connection, env: Environment) -> None:
    """The same, for autocommit work such as CREATE INDEX CONCURRENTLY."""
    conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(env.lock_timeout)))
    conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(env.statement_timeout)))


def retry_on_lock_timeout(conn: psycopg.Connection, env: Environment, work, *, what: str,
                          then: str):
    """Run work(); when lock_timeout expires, retry with doubling backoff, then give up
    with Busy (exit 4) naming the sessions that hold the locks."""
    backoff = parse_duration(env.lock_retry_backoff)
    for attempt in range(env.lock_retries + 1):
        try:
            return work()
        except psycopg.errors.LockNotAvailable:
            if attempt == env.lock_retries:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.rollback()
                holders = describe_holders(table_lock_holders(conn))
                raise Busy(
                    f"{what} could not get its table locks within lock_timeout="
                    f"{env.lock_timeout}, {env.lock_retries + 1} attempts. Blocking sessions: "
                    f"{holders}. End them or wait for them, then {then}"
                ) from None
            time.sleep(backoff * (2 ** attempt))
    raise AssertionError("unreachable")
