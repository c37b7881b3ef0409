"""The declared boundary, as issue #11 tells it: a DBA adds an extension, a view, a table
and a reporting role's grant to a deployed database. Undeclared they are findings;
declared in the env they are ignored (listed only in --json); either way no runbook
revokes the reporting role's grant."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from psycopg import sql

from shipshape import commands
from shipshape.errors import ProblemsFound
from shipshape.ops import pipeline, runbooks, triage
from tests.conftest import ROOT, run_invoke

SQL_DIR = ROOT / "sql"


@pytest.fixture
def dba(fresh_dsn, make_target, cache_dir):
    """A deployed database, then a DBA's own objects added by hand."""
    pipeline.deploy(make_target(fresh_dsn), SQL_DIR)
    role = f"reporting_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        available = {name for (name,) in conn.execute(
            "SELECT name FROM pg_available_extensions WHERE installed_version IS NULL")}
        extension = next((e for e in ("pg_stat_statements", "citext", "hstore", "pgcrypto")
                          if e in available), None)
        if extension is None:
            pytest.skip("this server has no contrib extension to add")
        conn.execute(sql.SQL("CREATE EXTENSION {}").format(sql.Identifier(extension)))
        conn.execute("CREATE VIEW v_report AS SELECT count(*) AS avatars FROM avatars")
        conn.execute("CREATE TABLE dba_notes (id integer PRIMARY KEY, note text)")
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON avatars TO {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON v_report TO {}").format(sql.Identifier(role)))
    yield fresh_dsn, extension, role
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def drift_plan(target) -> str:
    """The schema-drift runbook's plan (a dry run: changes nothing), all its SQL."""
    result = runbooks.run(target, SQL_DIR, "schema-drift", dry_run=True)
    assert result.outcome == "dry-run", result.message
    return "\n".join(step.sql for step in result.steps)


def break_an_index(dsn: str) -> None:
    """Real drift next to the DBA's objects, so that schema-drift has a plan to show."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute('DROP INDEX "avatar_presets_category_idx"')


def test_undeclared_they_are_findings_and_no_runbook_revokes_the_role(dba, make_target):
    dsn, extension, role = dba
    target = make_target(dsn)
    found = {(f.code, f.object) for f in commands.verify(target, SQL_DIR).findings}
    assert found == {("DRIFT_UNEXPECTED", f"extension {extension}"),
                     ("DRIFT_UNEXPECTED", "view v_report"),
                     ("DRIFT_UNEXPECTED", "table dba_notes"),
                     ("DRIFT_CHANGED", "grant avatars")}
    with pytest.raises(ProblemsFound):
        pipeline.deploy(target, SQL_DIR)
    assert not commands.doctor(target, SQL_DIR).diagnosis.healthy

    break_an_index(dsn)
    result = runbooks.run(target, SQL_DIR, "schema-drift", dry_run=True)
    plan = "\n".join(step.sql for step in result.steps)
    assert "CREATE INDEX avatar_presets_category_idx" in plan
    assert "REVOKE" not in plan and role not in plan
    left = [line for step in result.steps for line in step.left]
    assert any(role in line and "never revokes" in line for line in left), left
    with psycopg.connect(dsn) as conn:  # the dry run changed nothing
        assert conn.execute("SELECT has_table_privilege(%s, 'avatars', 'SELECT')",
                            [role]).fetchone() == (True,)


def test_declared_deploy_and_doctor_are_clean_and_json_lists_them(dba, make_target):
    dsn, extension, role = dba
    target = make_target(dsn, unmanaged_extensions=extension, unmanaged_relations="v_report*,dba_*",
                         unmanaged_roles=role)
    assert commands.verify(target, SQL_DIR).findings == []
    pipeline.deploy(target, SQL_DIR)  # the verify gate passes: no ProblemsFound
    report = commands.doctor(target, SQL_DIR)
    assert report.diagnosis.healthy, report.diagnosis.findings
    document = triage.as_json(report.diagnosis, report.groups)
    assert document["findings"] == []
    assert {(e["object"], e["status"]) for e in document["ignored"]} == {
        (f"extension {extension}", "ignored (declared)"), ("view v_report", "ignored (declared)"),
        ("table dba_notes", "ignored (declared)"), ("grant avatars", "ignored (declared)")}

    break_an_index(dsn)
    plan = drift_plan(target)
    assert "CREATE INDEX avatar_presets_category_idx" in plan
    assert "REVOKE" not in plan and role not in plan


def test_declaring_one_object_leaves_the_others_findings(dba, make_target):
    dsn, extension, _role = dba
    target = make_target(dsn, unmanaged_extensions=extension)
    found = {(f.code, f.object) for f in commands.verify(target, SQL_DIR).findings}
    assert found == {("DRIFT_UNEXPECTED", "view v_report"),
                     ("DRIFT_UNEXPECTED", "table dba_notes"),
                     ("DRIFT_CHANGED", "grant avatars")}
    fixes = {f.object: f.fix for f in commands.verify(target, SQL_DIR).findings}
    assert "unmanaged_relations" in fixes["view v_report"]


def test_declared_objects_show_in_json_only(dba):
    """As an operator runs it: the boundary from SHIPSHAPE_* settings; doctor's text says
    nothing of the declared objects, its --json lists them."""
    dsn, extension, role = dba
    settings = {"SHIPSHAPE_UNMANAGED_EXTENSIONS": extension,
                "SHIPSHAPE_UNMANAGED_RELATIONS": "v_report*,dba_*",
                "SHIPSHAPE_UNMANAGED_ROLES": role}
    text = run_invoke("doctor", "--dsn", dsn, env=settings)
    assert text.returncode == 0, text.stdout + text.stderr
    output = text.stdout + text.stderr
    assert "v_report" not in output and "dba_notes" not in output and "ignored" not in output
    as_json = run_invoke("doctor", "--json", "--dsn", dsn, env=settings)
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["healthy"] is True
    assert ("view v_report", "ignored (declared)") in {
        (e["object"], e["status"]) for e in document["ignored"]}
    undeclared = run_invoke("doctor", "--json", "--dsn", dsn)
    assert undeclared.returncode == 2
    assert json.loads(undeclared.stdout)["ignored"] == []
