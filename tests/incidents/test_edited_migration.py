"""An applied migration's file edited after it ran: its own runbook (not "the database is
ahead of the code"), which either names the `git show` that restores the file as it ran,
or, after proving in a shadow database that the edited files build exactly this schema,
re-records the checksum with a reason, in the history row."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from shipshape.errors import Refused
from tests.conftest import ROOT, run_invoke

EDITED = "migrations/0003_avatar_projects/migrate.sql.j2"


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c",
                           "user.email=t@example.test", *args],
                          check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    """The shipped SQL tree, committed in a git repository of its own."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "sql", root / "sql")
    _git(root, "init", "-q")
    _git(root, "add", "sql")
    _git(root, "commit", "-q", "-m", "the migrations as they ran")
    return root


def _history(incident):
    return incident.sql("SELECT version, checksum, source_checksum, applied_by "
                        "FROM shipshape.history ORDER BY version")


def test_a_harmless_edit_is_proven_then_re_recorded_with_its_reason(incident, repo, tmp_path):
    sql_dir = repo / "sql"
    path = sql_dir / EDITED
    path.write_text("-- reformatted by a well-meaning hand\n" + path.read_text())
    before = _history(incident)
    state = {"SHIPSHAPE_STATE_DIR": str(tmp_path / "state"),
             "SHIPSHAPE_REPORTS_DIR": str(tmp_path / "cli-reports")}
    cli = ("--env", "dev", "--dsn", incident.dsn, "--sql-dir", str(sql_dir))

    deploy = run_invoke("deploy", *cli, env=state)
    assert deploy.returncode == 3, deploy.stderr
    assert "`invoke runbook.run edited-migration --env dev` does either" in deploy.stderr

    doctor = run_invoke("doctor", *cli, "--json", env=state)
    assert doctor.returncode == 2, doctor.stderr
    book = json.loads(doctor.stdout)["runbooks"][0]
    assert book["id"] == "edited-migration"
    assert book["title"] == "An applied migration's file was edited after it ran"
    assert "ahead" not in book["title"]
    assert [f["code"] for f in book["findings"]] == ["MIGRATION_CHECKSUM"]

    # the plan names both ways: the exact git command, and the proven re-record
    commit = _git(repo, "rev-parse", "HEAD").strip()
    dry = run_invoke("runbook.run", "edited-migration", *cli, "--dry-run", env=state)
    assert dry.returncode == 0, dry.stderr
    assert f"git show {commit[:12]}:sql/{EDITED} > {path}" in dry.stdout
    assert 'needs --reason "..."' in dry.stdout
    assert _history(incident) == before

    # without a reason: refused, nothing recorded
    with pytest.raises(Refused, match="--reason"):
        incident.run("edited-migration", sql_dir=sql_dir)
    assert _history(incident) == before

    result = incident.run("edited-migration", sql_dir=sql_dir, reason="comment only, PR 42")
    assert result.outcome == "fixed", result.message
    after = {row[0]: row for row in _history(incident)}
    assert after[3][2] != before[2][2]  # the edited file's checksum now
    assert after[3][3].endswith("comment only, PR 42")
    assert "re-recorded by runbook edited-migration" in after[3][3]
    assert {v: r for v, r in after.items() if v != 3} == {r[0]: r for r in before if r[0] != 3}
    assert incident.findings(sql_dir) == []


def test_an_edit_that_changes_the_schema_is_refused_and_the_restore_works(incident, repo):
    sql_dir = repo / "sql"
    path = sql_dir / EDITED
    original = path.read_text()
    path.write_text(original.replace("description  text,", "description  varchar(200),"))
    before = _history(incident)

    # a dry run that escalates writes no file (issue 11)
    with pytest.raises(Refused, match="not harmless"):
        incident.run("edited-migration", sql_dir=sql_dir, dry_run=True)
    assert not incident.reports.exists() or not any(incident.reports.iterdir())

    with pytest.raises(Refused) as refused:
        incident.run("edited-migration", sql_dir=sql_dir, reason="looked harmless")
    message = str(refused.value)
    assert "not harmless" in message
    commit = _git(repo, "rev-parse", "HEAD").strip()
    command = f"git show {commit[:12]}:sql/{EDITED} > {path}"
    assert command in message
    assert _history(incident) == before
    assert refused.value.result.report_md.exists()  # a real run's escalation is reported

    # follow the message literally: the file is back, and nothing is left to fix
    subprocess.run(command, shell=True, check=True, cwd=repo)
    assert path.read_text() == original
    assert incident.findings(sql_dir) == []
