"""Incident 2: creating a project failed because migrations never ran on deploy, so
avatar_projects did not exist. The fix that was used then, `db push --accept-data-loss`,
has no equivalent here: migrations-not-applied applies the migrations with their own SQL."""

from __future__ import annotations

from tests.incidents.conftest import ready

AFTER_0002 = ["api_tokens", "avatar_usage_history", "persona_examples", "avatar_presets",
              "avatar_generations", "avatars", "avatar_projects"]


def never_applied_after_0002(incident):
    incident.sql("DROP TABLE shipshape.app_instances")  # 0012's
    for table in AFTER_0002:
        incident.sql(f'DROP TABLE "{table}" CASCADE')
    incident.sql("DELETE FROM shipshape.history WHERE version > 2")


def test_avatar_projects_missing_then_migrated(incident, app):
    never_applied_after_0002(incident)
    assert incident.sql("SELECT to_regclass('avatar_projects')") == [(None,)]
    status, body = ready(app)
    assert status == 503 and "schemaVersion" in body["failed"]

    _, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["migrations-not-applied"]
    codes = {f.code for f in groups[0].findings}
    assert codes == {"MIGRATION_PENDING", "SEED_TABLE_MISSING", "CHECK_ERROR"}
    pending = [f.object for f in groups[0].findings if f.code == "MIGRATION_PENDING"]
    assert pending[0] == "migration 0003_avatar_projects" and len(pending) == 10

    result = incident.run("migrations-not-applied", dry_run=True)
    assert result.outcome == "dry-run"
    migrate = result.steps[0]
    assert 'CREATE TABLE avatar_projects' in migrate.sql and migrate.sha256
    assert incident.sql("SELECT to_regclass('avatar_projects')") == [(None,)]  # changed nothing

    result = incident.run("migrations-not-applied")
    assert result.outcome == "fixed"
    assert [s.status for s in result.steps] == ["done", "done"]
    assert "10 migration(s) applied" in result.steps[0].detail
    assert incident.findings() == []

    # the same SQL the route runs (app/store.py create_project), then the route itself
    user_id = incident.ids["user"]
    assert incident.sql('INSERT INTO avatar_projects ("userId", name) VALUES (%s, %s) RETURNING name',
                        [user_id, "Professional Muda"]) == [("Professional Muda",)]
    assert ready(app)[0] == 200
    created = app.user().post("/projects", json={"name": "Test Project", "description": "Testing"})
    assert created.status_code == 201, created.text
    assert created.json()["project"]["name"] == "Test Project"
