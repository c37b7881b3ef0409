"""Incident 1: avatar generation failed because the four AI models were never seeded, or
were all disabled. doctor names models-missing; its seed step brings them back."""

from __future__ import annotations

import json

from tests.incidents.conftest import PICK_MODEL, ready


def test_models_never_seeded_then_seeded_by_the_runbook(incident, app):
    user = app.user()
    project = user.project()
    assert user.post(f"/projects/{project['id']}/avatars/generate",
                     json={"prompt": "a portrait"}).status_code == 200

    incident.sql("DELETE FROM ai_models")  # never seeded: the table is empty
    generate = user.post(f"/projects/{project['id']}/avatars/generate", json={"prompt": "a portrait"})
    assert generate.status_code == 503 and generate.json()["error"]["code"] == "NO_AI_MODELS"
    assert ready(app)[0] == 503

    diagnosis, groups = incident.doctor()
    assert not diagnosis.healthy
    assert [g.runbook.id for g in groups] == ["models-missing"]
    finding = groups[0].findings[0]
    assert finding.code == "SEED_MISSING" and finding.object == "seed ai_models.yaml"
    assert finding.runbook == "models-missing"
    assert groups[0].command == "invoke runbook.run models-missing --env dev"

    result = incident.run("models-missing")
    assert result.outcome == "fixed" and result.exit_code == 0
    assert [(s.step.id, s.status) for s in result.steps] == [("seed", "done")]
    assert "4 inserted" in result.steps[0].detail
    assert incident.findings() == []

    assert incident.sql(PICK_MODEL, ["avatar-creator"]) == [("avatar-creator:flux-dev-base", 8)]
    assert ready(app)[0] == 200
    again = user.post(f"/projects/{project['id']}/avatars/generate", json={"prompt": "a portrait"})
    assert again.status_code == 200, again.text
    assert again.json()["message"] == "Avatar generation started"
    assert again.json()["generation"]["modelKey"] == "avatar-creator:flux-dev-base"

    report = json.loads(result.report_json.read_text())
    assert report["outcome"] == "fixed" and report["findings_after"] == []
    assert [f["code"] for f in report["findings_before"]] == ["SEED_MISSING"]


def test_all_models_disabled(incident):
    incident.sql("UPDATE ai_models SET enabled = false")
    assert incident.sql(PICK_MODEL, ["avatar-creator"]) == []

    _, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["models-missing"]
    (finding,) = groups[0].findings
    assert finding.code == "SEED_DIFFERS"
    assert "enabled is false, expected true" in finding.message

    result = incident.run("models-missing")
    assert result.outcome == "fixed"
    assert "4 updated" in result.steps[0].detail
    assert incident.findings() == []
    assert incident.sql(PICK_MODEL, ["avatar-creator"]) == [("avatar-creator:flux-dev-base", 8)]
