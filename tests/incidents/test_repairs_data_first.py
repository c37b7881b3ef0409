"""Repairs that put data first (issue 11): a lossless type drift is restored, a lossy one
is left for escalation; a NULL "sourceType" is filled from the row's own data, or left."""

from __future__ import annotations

import pytest

from shipshape.errors import ProblemsFound


def column_type(incident, table: str, column: str) -> str:
    return incident.sql("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = %s::regclass AND attname = %s",
                        [table, column])[0][0]


def test_a_lossless_type_drift_is_restored_and_a_lossy_one_left(incident):
    incident.sql("UPDATE avatars SET gender = 'female'")
    incident.sql("ALTER TABLE avatars ALTER COLUMN gender TYPE varchar(10)")
    before = incident.sql("SELECT id, gender FROM avatars ORDER BY id")
    _, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["schema-drift"]

    result = incident.run("schema-drift")
    assert result.outcome == "fixed", result.message
    restore = result.steps[-1]
    assert 'ALTER TABLE "avatars" ALTER COLUMN "gender" TYPE text' in restore.sql
    assert column_type(incident, "avatars", "gender") == "text"
    assert incident.sql("SELECT id, gender FROM avatars ORDER BY id") == before
    assert incident.findings() == []


def test_a_narrowing_type_drift_is_left_for_escalation(incident):
    # integer -> bigint by hand: back to integer could fail or lose values, so it is left
    incident.sql('ALTER TABLE avatars ALTER COLUMN "usageCount" TYPE bigint')
    with pytest.raises(ProblemsFound) as unresolved:
        incident.run("schema-drift")
    restore = unresolved.value.result.steps[-1]
    assert any('column avatars.usageCount' in item and "type differs" in item
               for item in restore.left), restore.left
    assert column_type(incident, "avatars", "usageCount") == "bigint"


def _null_source_type(incident, *avatars):
    incident.sql('ALTER TABLE avatars ALTER COLUMN "sourceType" DROP NOT NULL')
    for avatar in avatars:
        incident.sql('UPDATE avatars SET "sourceType" = NULL WHERE id = %s', [avatar])


def test_a_null_source_type_is_inferred_from_the_avatars_own_data(incident):
    ids = incident.ids
    # a generated avatar (prompt and seed), and an uploaded one (its usage row)
    incident.sql("""UPDATE avatars SET "sourceType" = 'generated', "generationPrompt" = """
                 """'a portrait', "seedUsed" = 42 WHERE id = %s""", [ids["avatar2"]])
    _null_source_type(incident, ids["avatar"], ids["avatar2"])
    # ids["avatar"] has an 'uploaded' usage row (populate) and a generation pointing at it:
    # signs of both, so it is not guessed
    dry = incident.run("data-integrity", dry_run=True)
    fill = dry.steps[0]
    assert fill.preview == [{"avatarId": ids["avatar2"], "userId": ids["user"],
                             "projectId": ids["project"], "name": "Ken",
                             "sourceType": "generated"}]
    # the generation is the only sign of generating it: without it, it was uploaded
    incident.sql('UPDATE avatar_generations SET "avatarId" = NULL WHERE id = %s',
                 [ids["generation"]])
    result = incident.run("data-integrity")
    assert result.outcome == "fixed", result.message
    assert dict(incident.sql('SELECT id, "sourceType" FROM avatars')) == {
        ids["avatar"]: "uploaded", ids["avatar2"]: "generated"}
    assert incident.findings() == []


def test_a_source_type_with_nothing_to_infer_it_from_is_not_invented(incident):
    ids = incident.ids
    incident.sql('DELETE FROM avatar_usage_history WHERE "avatarId" = %s', [ids["avatar2"]])
    _null_source_type(incident, ids["avatar2"])
    dry = incident.run("data-integrity", dry_run=True)
    assert dry.steps[0].status != "done" and dry.steps[0].skip  # no row it can infer
    with pytest.raises(Exception):  # noqa: B017 - escalates: exit 2 or 6, never "fixed"
        incident.run("data-integrity")
    assert incident.sql('SELECT "sourceType" FROM avatars WHERE id = %s',
                        [ids["avatar2"]]) == [(None,)]
