"""Connections: open one with a clear, redacted error, and small catalog questions."""

from __future__ import annotations

import getpass
import socket
from contextlib import contextmanager

import psycopg
from psycopg import sql

from shipshape.errors import ConfigError
from shipshape.secrets import ambiguous_password, redact, register_dsn
from shipshape.targets import NOT_RUNNING, Target


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
    if target.source == NOT_RUNNING:
        raise ConfigError(
            f"The embedded PostgreSQL server of `{target.env.name}` is not running, and a "
            f"read-only command never starts one. Start it with `invoke up`, then run the "
            f"command again.")
    register_dsn(target.dsn)
    if ambiguous_password(target.dsn):
        raise ConfigError(
            f"The DSN from {target.source} has an unencoded '@' in its password, so the "
            f"host cannot be told apart. Percent-encode it (@ is %40) and run the command "
            f"again; the DSN is not shown, it holds a password.")
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
            + (", or run `invoke up` to start the embedded server."
               if target.source == "embedded server" else ".")
        ) from None
    except psycopg.ProgrammingError as exc:
        scheme = target.dsn.split("://", 1)[0] if "://" in target.dsn else ""
        hint = (f" `{scheme}://` is SQLAlchemy's spelling; libpq wants `postgresql://`."
                if "+" in scheme else "")
        raise ConfigError(f"Invalid DSN from {target.source}: {redact(str(exc))}.{hint}") from None
    if conn.info.server_version >= 140000:
        # Notice a killed client during a long statement, so that its transaction rolls
        # back and its locks (the deploy lock included) go away within seconds.
        # (in autocommit: one round trip, where BEGIN, SET and COMMIT took three)
        conn.autocommit = True
        conn.execute("SET client_connection_check_interval = '1s'")
        conn.autocommit = autocommit
    return conn


def table_exists(conn: psycopg.Connection, name: str) -> bool:
    """Whether a (schema-qualified) table exists, e.g. shipshape's own before first deploy."""
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()[0]


def server_version(conn: psycopg.Connection) -> str:
    """The server's version string ("15.20 (Debian ...)"), as the server reported it when
    the connection opened (every server since 7.4 reports it): no query."""
    return conn.info.parameter_status("server_version") or "unknown"


@contextmanager
def own_transaction(conn: psycopg.Connection):
    """Work that leaves the connection as it found it: the transaction the work opens is
    ended (committed, or rolled back when the work failed); a caller's open transaction
    stays open. (A read, or the runtime guard's snapshot into a temporary table.)"""
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    try:
        yield
    except BaseException:
        if idle and not conn.closed and not conn.autocommit:
            conn.rollback()
        raise
    if idle:
        end_read(conn)


def end_read(conn: psycopg.Connection) -> None:
    """End the transaction a read opened, so that it holds no snapshot or lock."""
    if not conn.autocommit:
        conn.commit()
