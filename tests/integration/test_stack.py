"""`invoke up` / `invoke down` on the embedded server, as `make up` runs them."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.conftest import run_invoke


@pytest.fixture
def home():
    """Where the local stack keeps its state: NOT under pytest's tmp_path. The embedded
    server runs as another user when tests run as root, so the wheel opens every parent
    folder to it (o+rx); pytest resets its own temp root to 0700 whenever a pytest session
    starts, and a server under it then cannot reach its data: initdb "Permission denied"
    and pg_ctl stop failing in `invoke down` were that, when two pytest sessions shared
    the machine."""
    directory = Path(tempfile.mkdtemp(prefix="shipshape-stack-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def free_port() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def test_up_twice_then_down(home):
    import stat
    import urllib.request

    state = {"SHIPSHAPE_STATE_DIR": str(home / "state")}
    port = free_port()
    try:
        first = run_invoke("up", "--port", port, env=state)
        assert first.returncode == 0, first.stderr
        assert "deploy local" in first.stdout and "what runs where" in first.stdout
        assert "(ready)" in first.stdout and f"127.0.0.1:{port}" in first.stdout
        assert (home / "state" / "local" / "pgdata" / "PG_VERSION").exists()
        token = home / "state" / "demo-token"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600
        assert token.read_text().strip() not in first.stdout + first.stderr
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/apps/avatar-creator/models",
                                         headers={"Authorization": f"Bearer {token.read_text().strip()}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200 and b"flux-dev-base" in response.read()

        # what a user does: spend the demo user's credits; that is no drift (the seed
        # declares creditBalance initial) and no redeploy gives them back
        balance = _generate(port, token.read_text().strip())
        assert balance < 1000
        doctor = run_invoke("doctor", env=state)
        assert doctor.returncode == 0, doctor.stdout + doctor.stderr

        second = run_invoke("up", "--port", port, env=state)  # reuses the server, its data, the app
        assert second.returncode == 0, second.stderr
        assert "nothing to apply" in second.stdout
        assert _balance(port, token.read_text().strip()) == balance
        assert run_invoke("deploy", env=state).returncode == 0
        assert _balance(port, token.read_text().strip()) == balance

        status = run_invoke("db.status", env=state)
        assert status.returncode == 0, status.stdout + status.stderr

        # dry runs on the running stack: they name what runs, and stop or start nothing
        plan = run_invoke("up", "--dry-run", env=state)
        assert plan.returncode == 0, plan.stderr
        assert "running (pid" in plan.stdout and "reused" in plan.stdout
        assert "0 migration(s) pending" in plan.stdout
        stopping = run_invoke("down", "--dry-run", env=state)
        assert "would stop the app (pid" in stopping.stdout
        assert "would stop the embedded PostgreSQL (pid" in stopping.stdout
        assert _balance(port, token.read_text().strip()) == balance  # still answering
    finally:
        down = run_invoke("down", env=state)
    assert down.returncode == 0 and down.stdout == ""  # one closing sentence, on stderr
    assert "stopped the app; stopped the embedded PostgreSQL" in down.stderr
    again = run_invoke("down", env=state)
    assert again.returncode == 0 and "not running" in again.stderr


def _call(port: str, token: str, method: str, path: str, body: dict | None = None) -> dict:
    import json
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/apps/avatar-creator{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


def _generate(port: str, token: str) -> int:
    """One avatar generated as the demo user; the balance the app answers after it."""
    project = _call(port, token, "POST", "/projects", {"name": "Mine", "description": "x"})
    started = _call(port, token, "POST", f"/projects/{project['project']['id']}/avatars/generate",
                    {"prompt": "a portrait"})
    assert started["creditUsed"] > 0
    return started["creditBalance"]


def _balance(port: str, token: str) -> int:
    return _call(port, token, "GET", "/me")["user"]["creditBalance"]


def test_local_data_survives_down_and_up(home):
    state = {"SHIPSHAPE_STATE_DIR": str(home / "state")}
    try:
        assert run_invoke("up", "--port", free_port(), env=state).returncode == 0
        dsn = _local_dsn(home)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO users (email) VALUES ('kept@example.test')")
        assert run_invoke("down", env=state).returncode == 0
        assert run_invoke("up", "--port", free_port(), env=state).returncode == 0
        with psycopg.connect(_local_dsn(home)) as conn:
            assert conn.execute("SELECT count(*) FROM users WHERE email = 'kept@example.test'").fetchone()[0] == 1
    finally:
        run_invoke("down", env=state)


def _local_dsn(home) -> str:
    import os

    from shipshape.adapters import embedded

    os.environ["SHIPSHAPE_STATE_DIR"] = str(home / "state")
    try:
        status = embedded.local_status()
        assert status["running"]
        return f"postgresql://postgres@/avatar_creator?host={status['socket_dir']}"
    finally:
        del os.environ["SHIPSHAPE_STATE_DIR"]
