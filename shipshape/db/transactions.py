"""How a piece of work runs: read-only and always rolled back, or in autocommit with the
env's timeouts for the session (statement by statement, as CREATE INDEX CONCURRENTLY
requires)."""

from __future__ import annotations

from contextlib import contextmanager

import psycopg

from shipshape.db.timeouts import set_session_timeouts
from shipshape.settings import Environment


def read_only(conn: psycopg.Connection, work):
    """Run work() in a read-only transaction that is always rolled back."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        return work()


@contextmanager
def autocommit(conn: psycopg.Connection, env: Environment):
    """Autocommit with the env's timeouts for the session, restored afterwards."""
    was_autocommit = conn.autocommit
    conn.autocommit = True
    try:
        set_session_timeouts(conn, env)
        yield
    finally:
        if not conn.closed:
            conn.execute("RESET lock_timeout")
            conn.execute("RESET statement_timeout")
            conn.autocommit = was_autocommit
