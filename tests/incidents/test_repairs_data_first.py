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
