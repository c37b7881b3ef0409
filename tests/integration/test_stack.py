"""`invoke up` / `invoke down` on the embedded server, as `make up` runs them."""

from __future__ import annotations

import psycopg

from tests.conftest import run_invoke


def test_up_twice_then_down(tmp_path):
    state = {"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")}
    try:
        first = run_invoke("up", env=state)
        assert first.returncode == 0, first.stderr
        assert "deploy local" in first.stdout and "what runs where" in first.stdout
        assert (tmp_path / "state" / "local" / "pgdata" / "PG_VERSION").exists()

        second = run_invoke("up", env=state)  # reuses the running server and its data
        assert second.returncode == 0, second.stderr
        assert "nothing to apply" in second.stdout

        status = run_invoke("db.status", env=state)
        assert status.returncode == 0, status.stdout + status.stderr
    finally:
        down = run_invoke("down", env=state)
    assert down.returncode == 0 and "stopped" in down.stdout
    again = run_invoke("down", env=state)
    assert again.returncode == 0 and "not running" in again.stdout


def test_local_data_survives_down_and_up(tmp_path):
    state = {"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")}
    try:
        assert run_invoke("up", env=state).returncode == 0
        dsn = _local_dsn(tmp_path)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO users (email) VALUES ('kept@example.test')")
        assert run_invoke("down", env=state).returncode == 0
        assert run_invoke("up", env=state).returncode == 0
        with psycopg.connect(_local_dsn(tmp_path)) as conn:
            assert conn.execute("SELECT count(*) FROM users WHERE email = 'kept@example.test'").fetchone()[0] == 1
    finally:
        run_invoke("down", env=state)


def _local_dsn(tmp_path) -> str:
    import os

    from shipshape import embedded

    os.environ["SHIPSHAPE_STATE_DIR"] = str(tmp_path / "state")
    try:
        status = embedded.local_status()
        assert status["running"]
        return f"postgresql://postgres@/avatar_creator?host={status['socket_dir']}"
    finally:
        del os.environ["SHIPSHAPE_STATE_DIR"]
