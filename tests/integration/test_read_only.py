"""Read-only commands start nothing: doctor, db.status, db.verify and db.lint on a stopped
local server say so and leave it stopped; an unreachable --dsn is not sent to `invoke up`."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_invoke


def test_doctor_never_starts_the_embedded_server(tmp_path):
    state = tmp_path / "state"
    result = run_invoke("doctor", "--json", env={"SHIPSHAPE_STATE_DIR": str(state)})
    assert result.returncode == 2, result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert [f["code"] for f in findings] == ["DB_UNREACHABLE"]
    assert "invoke up" in findings[0]["fix"]
    assert not (state / "local" / "pgdata").exists(), "doctor created or started a server"


def test_an_unreachable_dsn_is_not_sent_to_invoke_up():
    result = run_invoke("db.status", "--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 5
    assert "Cannot connect" in result.stderr and "invoke up" not in result.stderr


@pytest.mark.parametrize("command", ["db.status", "db.verify", "db.lint"])
def test_read_only_db_commands_never_start_the_embedded_server(tmp_path, command):
    state = tmp_path / "state"
    result = run_invoke(command, env={"SHIPSHAPE_STATE_DIR": str(state)})
    assert result.returncode == 5, result.stdout + result.stderr
    assert "not running" in result.stderr and "`invoke up`" in result.stderr
    assert not (state / "local" / "pgdata").exists(), f"{command} created or started a server"
