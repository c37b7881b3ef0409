"""Read-only commands start nothing: doctor on a stopped local server says so and leaves
it stopped; an unreachable --dsn is not sent to `invoke up`."""

from __future__ import annotations

import json

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
