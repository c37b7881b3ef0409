"""A migration that failed half-way in an older tool's style: its history row says
success = false ("dirty"), its first statement ran, the others did not. deploy refuses
(exit 3); failed-migration re-runs it with its own SQL and the row becomes clean."""

from __future__ import annotations

import pytest

from shipshape.errors import Refused


def half_failed_0010(incident):
    incident.sql('DROP INDEX "avatars_projectId_idx"')
    incident.sql('DROP INDEX "avatars_sourceType_idx"')
    incident.sql("UPDATE shipshape.history SET success = false, applied_by = 'old-tool' "
                 "WHERE version = 10")


def test_dirty_history_row_is_retried_by_the_runbook(incident):
    half_failed_0010(incident)
    with pytest.raises(Refused) as refused:
        incident.deploy()
    assert "0010_performance_indexes failed part-way" in str(refused.value)

    _, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["failed-migration"]
    codes = {(f.code, f.object) for f in groups[0].findings}
    assert ("MIGRATION_FAILED", "migration 0010_performance_indexes") in codes
    # what the half-run migration did create is not accounted for by any clean row
    assert ("DRIFT_UNEXPECTED", "index avatars_userId_idx") in codes

    result = incident.run("failed-migration")
    assert result.outcome == "fixed", result.message
    complete, retry, _seed = result.steps
    # two indexes are missing: it is not complete, so it is re-run, not marked applied
    assert complete.status == "skipped" and "is not complete" in complete.skip
    assert "re-running 0010_performance_indexes, recorded as failed" in retry.summary
    assert 'CREATE INDEX IF NOT EXISTS "avatars_sourceType_idx"' in retry.sql
    assert incident.sql("SELECT success, applied_by <> 'old-tool' FROM shipshape.history "
                        "WHERE version = 10") == [(True, True)]
    assert incident.findings() == []
    assert incident.deploy().exit_code == 0


def test_a_retry_that_cannot_complete_stops_and_resumes_after_the_fix(incident, tmp_path):
    """A failing step stops the run; rerunning resumes at that step and never applies a
    done step twice."""
    half_failed_0010(incident)
    # The retry cannot complete: the column of its last index was renamed by hand.
    incident.sql('ALTER TABLE avatars RENAME COLUMN "sourceType" TO "source_type"')
    from shipshape.errors import SQLFailed

    with pytest.raises(SQLFailed) as failed:
        incident.run("failed-migration")
    message = str(failed.value)
    assert "Step 2 (retry) failed" in message and "resumes at retry" in message
    first = failed.value.result
    assert first.outcome == "failed" and first.exit_code == 6
    assert [s.status for s in first.steps] == ["skipped", "failed", "not-run"]
    assert first.report_json.exists()
    runs = incident.sql("SELECT id, status, attempts FROM shipshape.runbook_runs")
    assert runs == [(first.run_id, "failed", 1)]

    incident.sql('ALTER TABLE avatars RENAME COLUMN "source_type" TO "sourceType"')
    second = incident.run("failed-migration")
    assert second.outcome == "fixed" and second.run_id == first.run_id and second.attempt == 2
    assert incident.sql("SELECT status, attempts FROM shipshape.runbook_runs") == [("fixed", 2)]
    steps = incident.sql("SELECT step, status FROM shipshape.runbook_steps ORDER BY position")
    assert steps == [("complete", "skipped"), ("retry", "done"), ("seed", "done")]
    assert incident.findings() == []

    # a third run finds nothing to do, and applies nothing
    third = incident.run("failed-migration")
    assert third.outcome == "nothing-to-do" and third.steps == []


def test_a_retry_that_silently_skips_is_caught_by_verify(incident):
    """IF NOT EXISTS skips an index whose name a table took: the retry "succeeds", and
    only the verification after the steps notices. Exit 2, escalated, not "fixed"."""
    half_failed_0010(incident)
    incident.sql('CREATE TABLE "avatars_sourceType_idx" (id int)')
    from shipshape.errors import ProblemsFound

    with pytest.raises(ProblemsFound) as unresolved:
        incident.run("failed-migration")
    assert unresolved.value.exit_code == 2
    assert "verify still finds" in str(unresolved.value)
    assert "DRIFT_MISSING index avatars_sourceType_idx" in str(unresolved.value)
    assert unresolved.value.result.outcome == "unresolved"


def test_a_dirty_row_whose_objects_are_all_there_is_proven_then_marked_applied(incident):
    """0011 creates api_tokens without IF NOT EXISTS: re-running it would fail on the table
    it already created. Every object of it is here, so the runbook proves that and marks
    the row applied instead of escalating."""
    incident.sql("UPDATE shipshape.history SET success = false, applied_by = 'old-tool' "
                 "WHERE version = 11")
    tokens = incident.sql("SELECT count(*) FROM api_tokens")
    _, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["failed-migration"]

    dry = incident.run("failed-migration", dry_run=True)
    complete, retry, _seed = dry.steps
    assert "mark 0011_api_tokens applied" in complete.summary
    assert complete.sql.startswith("-- proven first")
    assert retry.skip == "no pending migration"  # planned against the completed history
    assert incident.sql("SELECT success FROM shipshape.history WHERE version = 11") == [(False,)]

    result = incident.run("failed-migration")
    assert result.outcome == "fixed", result.message
    ((success, applied_by),) = incident.sql(
        "SELECT success, applied_by FROM shipshape.history WHERE version = 11")
    assert success and applied_by.endswith("after proof")
    assert "completed by runbook failed-migration" in applied_by
    assert incident.sql("SELECT count(*) FROM api_tokens") == tokens
    assert incident.findings() == []
