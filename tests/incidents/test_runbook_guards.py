"""The runbook engine's guards, each provoked on purpose: the SQL that runs is the SQL that
was confirmed, a resumed run never applies a done step again, and terminate ends only
the sessions it named (pid and start time), never a shipshape run.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import timedelta

import psycopg
import pytest

from shipshape import db
from shipshape.engine import identity
from shipshape.errors import ProblemsFound, Refused, SQLFailed
from shipshape.ops.runbooks.steps import terminate

FIRST = "avatar_generations_status_idx"
SECOND = "avatar_generations_userId_idx"


def indexes(incident, *names) -> list:
    return [n for (n,) in incident.sql(
        "SELECT indexname FROM pg_indexes WHERE indexname = ANY(%s) ORDER BY 1", [list(names)])]


def test_a_step_whose_sql_changed_since_the_plan_is_not_run(incident, make_target):
    local = make_target(incident.dsn, "local")
    incident.target, incident.env = local, local.env
    with psycopg.connect(incident.dsn) as conn:
        identity.stamp(conn, "local", by="test")
    incident.sql(f'DROP INDEX "{FIRST}"')

    def confirm_then_drift(question):
        # between the plan the operator read and the steps: someone drops another index
        incident.sql(f'DROP INDEX "{SECOND}"')
        return True

    with pytest.raises(Refused) as refused:
        incident.run("schema-drift", yes=False, confirm=confirm_then_drift)
    assert refused.value.exit_code == 3
    assert "the database changed since the plan was shown" in str(refused.value)
    assert indexes(incident, FIRST, SECOND) == []  # the shown plan did not run either

    result = incident.run("schema-drift", yes=False, confirm=lambda q: True)  # a new plan
    assert result.outcome == "fixed"
    assert indexes(incident, FIRST, SECOND) == sorted([FIRST, SECOND])


def test_a_resumed_run_does_not_apply_a_done_step_again(incident):
    """Step 1 (reapply: re-create avatars) is done, step 2 (restore: its foreign keys)
    fails on a row; the rerun after the row is fixed resumes at step 2."""
    incident.sql("DELETE FROM avatars")
    incident.sql("DROP TABLE avatars CASCADE")
    incident.sql('UPDATE avatar_generations SET "avatarId" = %s', ["an-avatar-that-is-gone"])
    # the shipped restore leaves a foreign key that rows violate (naming data-integrity);
    # one that tries it anyway fails on the row, which is the failure to resume from
    books = [dataclasses.replace(b, steps=tuple(
        dataclasses.replace(s, args={**s.args, "leave_violated": False}) if s.do == "restore"
        else s for s in b.steps)) if b.id == "schema-drift" else b for b in incident.books]

    with pytest.raises(SQLFailed) as failed:
        incident.run("schema-drift", runbooks=books)
    first = failed.value.result
    assert [s.status for s in first.steps] == ["done", "failed"]
    assert incident.sql("SELECT to_regclass('avatars')::text") == [("avatars",)]

    incident.sql('UPDATE avatar_generations SET "avatarId" = NULL')
    second = incident.run("schema-drift", runbooks=books)
    assert second.outcome == "fixed" and second.run_id == first.run_id
    assert [s.status for s in second.steps] == ["already-done", "done"]
    assert second.steps[0].done_before.startswith("done in an earlier attempt of this run")
    assert incident.sql("SELECT step, status FROM shipshape.runbook_steps ORDER BY position") \
        == [("reapply", "done"), ("restore", "done")]


def test_terminate_never_ends_a_shipshape_run(incident):
    deploy = psycopg.connect(incident.dsn, application_name="shipshape deploy bob@ci")
    deploy.execute("UPDATE avatars SET name = name WHERE id = %s", [incident.ids["avatar"]])
    try:
        time.sleep(0.3)  # older than the threshold below
        result = None
        try:
            result = incident.run("blocking-session", long_transaction="100ms")
        except (ProblemsFound, Refused) as exc:
            result = exc.result
        (step,) = result.steps
        assert step.skip == "no blocking session to end"
        assert any("is a shipshape run" in item for item in step.left)
        assert deploy.execute("SELECT 1").fetchone() == (1,)  # still there, still open
    finally:
        deploy.close()


def test_terminate_ends_a_pid_only_with_its_start_time(incident):
    """A pid reused by another session since the plan: the start time tells them apart."""
    other = psycopg.connect(incident.dsn, application_name="psql carol")
    other.execute("UPDATE avatars SET name = name WHERE id = %s", [incident.ids["avatar"]])
    try:
        time.sleep(0.3)
        diagnosis, _ = incident.doctor(long_transaction="100ms")
        planned = diagnosis.sessions[other.info.backend_pid]
        reused = dataclasses.replace(planned, backend_start=planned.backend_start
                                     - timedelta(seconds=1))
        with db.connect(incident.target) as conn:
            assert terminate._terminate(conn, reused, []) is False
            assert other.execute("SELECT 1").fetchone() == (1,)
            assert terminate._terminate(conn, planned, []) is True
        with pytest.raises(psycopg.OperationalError):
            other.execute("SELECT 1")
    finally:
        other.close()


def test_a_deleting_step_is_refused_where_destructive_statements_are_forbidden(
        incident, make_target):
    staging = make_target(incident.dsn, "staging")  # allow_destructive: false
    incident.target, incident.env = staging, staging.env
    with psycopg.connect(incident.dsn) as conn:
        identity.stamp(conn, "staging", by="test")
    incident.sql('ALTER TABLE avatars DROP CONSTRAINT "avatars_projectId_fkey"')
    incident.sql("DELETE FROM avatar_projects WHERE id = %s", [incident.ids["project"]])

    with pytest.raises(Refused) as refused:
        incident.run("delete-orphans", yes=True)
    message = " ".join(str(refused.value).split())
    assert "Env staging forbids destructive statements, and step(s) delete-avatars" in message
    assert len(incident.rows()["avatars"]) == 2  # the orphans are still there
