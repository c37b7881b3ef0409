"""Connections, the deploy lock, and per-environment timeouts."""

from __future__ import annotations

import getpass
import hashlib
import socket
import time
from contextlib import contextmanager
from functools import cache
from importlib import resources

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from shipshape.environments import Environment, Target, parse_duration, redact, register_dsn
from shipshape.errors import Busy, ConfigError

# One key for "someone is changing this database's schema", per database.
MIGRATION_LOCK = "shipshape:migrate"


@cache
def query(name: str) -> str:
    """A query from shipshape/sql/<name>.sql; SQL lives in .sql files, not in Python."""
    return resources.files("shipshape").joinpath("sql", f"{name}.sql").read_text()


def identifier(name: str) -> sql.Identifier:
    """`name` or `schema.name` as an SQL identifier, each part quoted as given (case kept)."""
    return sql.Identifier(*name.split(".", 1))


def operator() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def connect(target: Target, *, purpose: str = "shipshape", autocommit: bool = False,
            connect_timeout: int | None = None) -> psycopg.Connection:
    """Open a connection or fail with a clear, redacted message (exit 5)."""
    register_dsn(target.dsn)
    try:
        conn = psycopg.connect(
            target.dsn,
            autocommit=autocommit,
            connect_timeout=connect_timeout or target.env.connect_timeout,
            application_name=f"shipshape {purpose} {operator()}"[:63],
        )
    except psycopg.OperationalError as exc:
        raise ConfigError(
            f"Cannot connect to {target.describe()}: {redact(str(exc).strip())}. "
            f"Check that the server runs and the DSN is right (--dsn, DATABASE_URL)"
            + (", or run `invoke up` to start the embedded server." if target.env.is_local else ".")
        ) from None
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"Invalid DSN {redact(target.dsn)}: {redact(str(exc))}") from None
    if conn.info.server_version >= 140000:
        # Notice a killed client during a long statement, so that its transaction rolls
        # back and its locks (the deploy lock included) go away within seconds.
        conn.execute("SET client_connection_check_interval = '1s'")
        if not autocommit:
            conn.commit()
    return conn


def table_exists(conn: psycopg.Connection, name: str) -> bool:
    """Whether a (schema-qualified) table exists, e.g. shipshape's own before first deploy."""
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()[0]


def server_version(conn: psycopg.Connection) -> str:
    return conn.execute("SHOW server_version").fetchone()[0]


def set_local_timeouts(conn: psycopg.Connection, env: Environment) -> None:
    """Apply the env's timeouts to the current transaction only."""
    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(env.lock_timeout)))
    conn.execute(
        sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(env.statement_timeout))
    )


def set_session_timeouts(conn: psycopg.Connection, env: Environment) -> None:
    """The same, for autocommit work such as CREATE INDEX CONCURRENTLY."""
    conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(env.lock_timeout)))
    conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(env.statement_timeout)))


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
    while True:
        got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", [classid, objid]).fetchone()[0]
        if not conn.autocommit:
            conn.commit()
        if got:
            break
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
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", [classid, objid])
            if not conn.autocommit:
                conn.commit()


def lock_holders(conn: psycopg.Connection, name: str = MIGRATION_LOCK) -> list[dict]:
    classid, objid = _lock_key(name)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query("holders"), {"classid": classid, "objid": objid}).fetchall()
    if not conn.autocommit:
        conn.commit()
    return rows


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


def table_lock_holders(conn: psycopg.Connection) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query("table_lock_holders")).fetchall()


def server_message(exc: psycopg.Error, env: Environment | None = None) -> str:
    """What the server said, in one line: its message, its detail, or the timeout that
    cancelled the statement. Redacted."""
    if isinstance(exc, psycopg.errors.QueryCanceled) and env is not None:
        return f"statement_timeout={env.statement_timeout} expired"
    reason = (exc.diag.message_primary or str(exc)).strip()
    if exc.diag.message_detail:
        reason += f" ({exc.diag.message_detail.strip()})"
    return redact(reason)


def describe_holders(holders: list[dict]) -> str:
    if not holders:
        return "holder already gone"
    return "; ".join(
        f"pid {h['pid']}, {h['application_name']!r}, since {h['since']:%Y-%m-%d %H:%M:%S %Z}"
        + (f", holding {h['locks']}" if h.get("locks") else "")
        for h in holders
    )
