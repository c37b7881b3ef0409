"""A column added by hand, next to a drift a runbook does fix (a dropped index): every
runbook leaves the column and its values alone, and the restore step lists it as left
for escalation. "Never drops" is checked on what each step planned and on the data.
"""

from __future__ import annotations

import pytest

from shipshape.errors import ShipshapeError

INDEX = "avatars_userId_createdAt_idx"
COLUMN = "handNote"


def hand_note(incident) -> list:
    return incident.sql(f'SELECT id, "{COLUMN}" FROM avatars ORDER BY id')


def planned_sql(result) -> str:
    return "\n".join(step.sql or "" for step in (result.steps if result else []))


@pytest.fixture
def drifted(incident):
    incident.sql(f'ALTER TABLE avatars ADD COLUMN "{COLUMN}" text')
    incident.sql(f'UPDATE avatars SET "{COLUMN}" = %s', ["written by hand"])
    incident.sql(f'DROP INDEX "{INDEX}"')
    return incident


def test_restore_rebuilds_the_index_and_leaves_the_hand_added_column(drifted):
    incident = drifted
    notes = hand_note(incident)
    assert len(notes) == 2 and {n for _, n in notes} == {"written by hand"}
    assert "schema-drift" in incident.named()

    result = incident.run("schema-drift")
    restore = next(s for s in result.steps if s.step.do == "restore")
    assert restore.status == "done"
    assert f'CREATE INDEX "{INDEX}"' in restore.sql
    assert "DROP" not in restore.sql.upper() and COLUMN not in restore.sql
    left = [item for item in restore.left if item.startswith(f"column avatars.{COLUMN}")]
    assert left and "is unexpected" in left[0] and "no migration creates it" in left[0]
    assert f"left for escalation: column avatars.{COLUMN}" in result.report_md.read_text()

    assert hand_note(incident) == notes
    remaining = {(f.code, f.object) for f in incident.findings()}
    assert remaining == {("DRIFT_UNEXPECTED", f"column avatars.{COLUMN}")}


def test_no_runbook_drops_the_hand_added_column(drifted):
    incident = drifted
    notes = hand_note(incident)
    for book in incident.books:
        if not book.steps:
            continue
        result = None
        try:
            result = incident.run(book.id)
        except ShipshapeError as exc:  # refused, elsewhere, unresolved: all fine here
            result = exc.result
        text = planned_sql(result).upper()
        assert "DROP COLUMN" not in text and COLUMN.upper() not in text, (book.id, text)
        assert hand_note(incident) == notes, book.id
