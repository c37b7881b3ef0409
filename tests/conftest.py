"""Test servers: the PostgreSQL at 127.0.0.1:5432 when it answers, else an embedded one.

Never a mocked database. Each test that needs one gets a fresh database of its own.
SHIPSHAPE_TEST_DSN (an admin DSN) overrides the choice.

The engine's round trips (migrate, rollback, verify, catalog) run on BOTH servers the
machines have, through the `server` fixture: the system one (PostgreSQL 15 here and in CI)
and the embedded PostgreSQL 18 that `local` and shadow databases use, started once per
session. `server_dsn` is a fresh database on each in turn.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from shipshape.settings import load_environment
from shipshape.targets import Target

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(dsn: str) -> bool:
    try:
        psycopg.connect(dsn, connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def embedded_admin_dsn():
    """An embedded PostgreSQL 18 for the whole session, deleted afterwards."""
    from shipshape.adapters import embedded

    with embedded.scratch_server() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def admin_dsn(request):
    """The admin DSN of the server under test."""
    explicit = os.environ.get("SHIPSHAPE_TEST_DSN")
    if explicit:
        return explicit
    if _answers(SYSTEM_DSN):
        return SYSTEM_DSN
    return request.getfixturevalue("embedded_admin_dsn")


@dataclass(frozen=True)
class Server:
    """A PostgreSQL server under test: which one, its admin DSN, its major version."""

    name: str  # "system" (127.0.0.1:5432, or SHIPSHAPE_TEST_DSN) or "embedded"
    admin_dsn: str
    major: int


SERVERS = ("system", "embedded")


def server_major(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.info.server_version // 10000


@pytest.fixture(scope="session", params=SERVERS)
def server(request) -> Server:
    """Each server the machines have, in turn (parametrize it with indirect=True to choose).
    The system one is skipped, saying why, only where none answers: the embedded one then
    still runs."""
    if request.param == "system":
        dsn = os.environ.get("SHIPSHAPE_TEST_DSN") or SYSTEM_DSN
        if not _answers(dsn):
            pytest.skip(f"no PostgreSQL answers at {dsn.split('@')[-1]} (set SHIPSHAPE_TEST_DSN "
                        f"to an admin DSN of one); the embedded server runs these tests")
    elif request.param == "embedded":
        dsn = request.getfixturevalue("embedded_admin_dsn")
    else:
        raise ValueError(f"unknown test server {request.param!r}; one of {', '.join(SERVERS)}")
    return Server(request.param, dsn, server_major(dsn))


@pytest.fixture
def server_dsn(server):
    """DSN of a new, empty database on `server`, dropped after the test."""
    name = create_database(server.admin_dsn)
    yield dsn_for(server.admin_dsn, name)
    drop_database(server.admin_dsn, name)


def pytest_report_header(config):
    dsn = os.environ.get("SHIPSHAPE_TEST_DSN") or SYSTEM_DSN
    if _answers(dsn):
        with psycopg.connect(dsn) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        return (f"test database server: PostgreSQL {version} at {dsn.split('@')[-1]}; "
                f"the `server` tests also on the embedded PostgreSQL 18")
    return "test database server: embedded PostgreSQL (127.0.0.1:5432 did not answer)"


def create_database(admin: str) -> str:
    name = f"ss_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def dsn_for(admin: str, database: str) -> str:
    return psycopg.conninfo.make_conninfo(admin, dbname=database)


@pytest.fixture
def fresh_dsn(admin_dsn):
    """DSN of a new, empty database, dropped after the test."""
    name = create_database(admin_dsn)
    yield dsn_for(admin_dsn, name)
    drop_database(admin_dsn, name)


@pytest.fixture
def make_target(tmp_path):
    """Build a Target for a DSN and env, with settings overridden as keyword arguments."""

    def make(dsn: str, env: str = "local", **settings) -> Target:
        environment = load_environment(env, overrides=settings, config_dir=ROOT)
        return Target(environment, dsn, "test")

    return make


@pytest.fixture
def sql_tree(tmp_path):
    """A copy of the shipped SQL tree that a test may edit."""
    target = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", target)
    return target


@pytest.fixture
def state(tmp_path):
    """The environment of a CLI run (run_invoke(env=state)) with a state directory (shadow
    cache, embedded server, app) of the test's own."""
    return {"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")}


@pytest.fixture(scope="session")
def session_state_dir(tmp_path_factory):
    """SHIPSHAPE_STATE_DIR for a whole session: one shadow-snapshot cache shared by the
    suites that deploy the shipped tree many times, kept out of the repository."""
    directory = tmp_path_factory.mktemp("state")
    patch = pytest.MonkeyPatch()
    patch.setenv("SHIPSHAPE_STATE_DIR", str(directory))
    yield directory
    patch.undo()


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """Keep shadow-snapshot caches out of the repository during tests."""
    monkeypatch.setenv("SHIPSHAPE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def run_invoke(*args: str, env: dict | None = None, cwd: Path = ROOT, timeout: int = 240,
               input: str | None = None) -> subprocess.CompletedProcess:
    """Run `invoke ARGS` as an operator would, capturing output and exit code."""
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
        cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout, input=input,
    )
