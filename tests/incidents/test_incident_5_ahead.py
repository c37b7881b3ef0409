"""The root of incident 3: the deployed artifact lacked migrations (a git-ignored
folder), so the database is ahead of the code. deploy refuses (exit 3) instead of
"fixing" anything, and the runbook escalates instead of fixing."""

from __future__ import annotations

import json
import shutil

import pytest

from shipshape.errors import Refused
from tests.conftest import ROOT, run_invoke


@pytest.fixture
def artifact(tmp_path):
    """The SQL tree as the broken build shipped it: the newest migrations are missing."""
    tree = tmp_path / "artifact-sql"
    shutil.copytree(ROOT / "sql", tree)
    for name in ("0010_performance_indexes", "0011_api_tokens"):
        shutil.rmtree(tree / "migrations" / name)
    return tree


def test_database_ahead_of_the_code_is_refused_and_escalated(incident, artifact, tmp_path):
    history = incident.sql("SELECT * FROM shipshape.history ORDER BY version")
    state = {"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")}
    deploy = run_invoke("deploy", "--env", "dev", "--dsn", incident.dsn, "--sql-dir", str(artifact),
                        env=state)
    assert deploy.returncode == 3, deploy.stderr
    assert "The database is ahead of the code" in deploy.stderr
    assert "0010_performance_indexes" in deploy.stderr and "0011_api_tokens" in deploy.stderr

    doctor = run_invoke("doctor", "--env", "dev", "--dsn", incident.dsn, "--sql-dir",
                        str(artifact), "--json", env=state)
    assert doctor.returncode == 2, doctor.stderr
    report = json.loads(doctor.stdout)
    assert not report["healthy"]
    assert report["runbooks"][0]["id"] == "ahead-of-code"
    assert report["runbooks"][0]["command"] == (
        f"invoke runbook.run ahead-of-code --env dev --sql-dir {artifact}")
    assert {f["object"] for f in report["runbooks"][0]["findings"]} == {
        "migration 0010_performance_indexes", "migration 0011_api_tokens"}

    with pytest.raises(Refused) as refused:
        incident.run("ahead-of-code", sql_dir=artifact)
    result = refused.value.result
    assert result.outcome == "escalated" and result.exit_code == 3 and result.steps == []
    assert "deploy the artifact that contains the unknown migrations" in str(refused.value)
    assert result.report_md.exists()
    # nothing changed, and no runbook of a lower priority acts while it is ahead
    assert incident.sql("SELECT * FROM shipshape.history ORDER BY version") == history
    for other in ("migrations-not-applied", "schema-drift"):
        with pytest.raises(Exception) as elsewhere:
            incident.run(other, sql_dir=artifact)
        assert "ahead-of-code" in str(elsewhere.value)
    assert incident.sql("SELECT * FROM shipshape.history ORDER BY version") == history

    # the fix is the right artifact: with it, everything is clean
    assert incident.findings() == []
    assert incident.deploy().exit_code == 0
