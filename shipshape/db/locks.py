"""The deploy lock (a session-level advisory lock) and who holds locks."""

from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager

import psycopg
from psycopg.rows import dict_row

from shipshape.db.queries import query
from shipshape.errors import Busy
from shipshape.settings import parse_duration

# One key for "someone is changing this database's schema", per database.
MIGRATION_LOCK = "shipshape:migrate"


def _lock_key(name: str) -> tuple[int, int]:
    digest = hashlib.sha256(name.encode()).digest()
    classid = int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
    objid = int.from_bytes(digest[4:8], "big") & 0x7FFFFFFF
    return classid, objid


@contextmanager
def advisory_lock(conn: psycopg.Connection, wait: str, name: str = MIGRATION_LOCK):
    """Hold a session-level advisory lock; concurrent deploys queue behind it.

    Session-level, so a killed deploy releases it with its connection.
    """
    classid, objid = _lock_key(name)
    deadline = time.monotonic() + parse_duration(wait)
    delay = 0.02
    # Each poll is its own statement outside a transaction: nothing is committed on the
    # caller's behalf, and pg_stat_activity shows the deploy asking for the lock while it
    # waits (not a COMMIT).
    with _autocommit(conn):
        while not conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                               [classid, objid]).fetchone()[0]:
            if time.monotonic() >= deadline:
                raise Busy(
                    f"Another deploy holds the migration lock on this database "
                    f"({describe_holders(lock_holders(conn, name))}); gave up after {wait}. "
                    f"Wait for it to finish and run the command again, or raise "
                    f"--set migration_lock_wait=..."
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    try:
        yield
    finally:
        if not conn.closed:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
            with _autocommit(conn):
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", [classid, objid])


@contextmanager
def _autocommit(conn: psycopg.Connection):
    before = conn.autocommit
    conn.autocommit = True
    try:
        yield
    finally:
        if not conn.closed:
            conn.autocommit = before


def lock_holders(conn: psycopg.Connection, name: str = MIGRATION_LOCK) -> list[dict]:
    classid, objid = _lock_key(name)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query("holders"), {"classid": classid, "objid": objid}).fetchall()
    if not conn.autocommit:
        conn.commit()
    return rows


def table_lock_holders(conn: psycopg.Connection) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query("table_lock_holders")).fetchall()


def describe_holders(holders: list[dict]) -> str:
    if not holders:
        return "holder already gone"
    return "; ".join(
        f"pid {h['pid']}, {h['application_name']!r}, since {h['since']:%Y-%m-%d %H:%M:%S %Z}"
        + (f", holding {h['locks']}" if h.get("locks") else "")
        for h in holders
    )
