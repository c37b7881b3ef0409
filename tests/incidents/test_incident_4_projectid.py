"""Incident 4: migration 0006 existed in the code but was never applied, so generating an
avatar failed on avatar_generations."projectId", while the seed had run and the dashboard
(which only reads ai_models) looked fine."""

from __future__ import annotations

from tests.incidents.conftest import PICK_MODEL, ready


def test_projectid_missing_while_the_seed_ran(incident, app):
    user = app.user()
    project = user.project()
    # 0006 never applied: its table is absent and its history row too; every later
    # migration and the seed did run.
    incident.sql("DROP TABLE avatar_generations")
    incident.sql("DELETE FROM shipshape.history WHERE version = 6")

    assert incident.sql(PICK_MODEL, ["avatar-creator"]) == [("avatar-creator:flux-dev-base", 8)]
    assert user.get("/models").json()["count"] == 4  # the dashboard looks fine
    generate = user.post(f"/projects/{project['id']}/avatars/generate", json={"prompt": "a portrait"})
    assert generate.status_code == 503, generate.text
    assert generate.json()["error"]["code"] == "SCHEMA_MISMATCH"

    diagnosis, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["migrations-not-applied"]
    findings = groups[0].findings
    assert [f.object for f in findings if f.code == "MIGRATION_PENDING"] == [
        "migration 0006_avatar_generations"]
    assert not [f for f in diagnosis.findings if f.code.startswith("SEED_")]  # the seed ran

    result = incident.run("migrations-not-applied")
    assert result.outcome == "fixed", result.message
    assert result.steps[0].detail == "1 migration(s) applied: 0006_avatar_generations"
    assert incident.findings() == []
    assert incident.sql("SELECT attnotnull FROM pg_attribute WHERE attrelid = "
                        "'avatar_generations'::regclass AND attname = 'projectId'") == [(True,)]

    assert ready(app)[0] == 200
    generate = user.post(f"/projects/{project['id']}/avatars/generate", json={"prompt": "a portrait"})
    assert generate.status_code == 200, generate.text
    assert generate.json()["generation"]["projectId"] == project["id"]
