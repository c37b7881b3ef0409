"""The troubleshooting guide's data and schema problems: orphaned avatars, NULLs in
required fields, a foreign key without ON DELETE CASCADE, missing indexes. The guide fixed
them with DELETE/UPDATE/CREATE INDEX pasted by hand; here a reviewed data fix (shown
before it runs) and a restore from the definitions the migrations produce."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest

from tests.incidents.conftest import ready

NO_CASCADE = ('ALTER TABLE avatars DROP CONSTRAINT "avatars_projectId_fkey", '
              'ADD CONSTRAINT "avatars_projectId_fkey" FOREIGN KEY ("projectId") '
              'REFERENCES avatar_projects (id)')


def test_orphaned_avatars_and_nulls_are_shown_fixed_and_prevented(incident):
    ids = incident.ids
    (keep_project,) = incident.sql('INSERT INTO avatar_projects ("userId", name) VALUES (%s, '
                                   "'Kept') RETURNING id", [ids["user"]])[0]
    (kept,) = incident.sql('INSERT INTO avatars ("userId", "projectId", name, "baseImageUrl") '
                           "VALUES (%s, %s, 'Kept', 'https://cdn.example.test/k.png') RETURNING id",
                           [ids["user"], keep_project])[0]
    # uploaded, as the app records it: its "sourceType" is inferred back from this row
    incident.sql('INSERT INTO avatar_usage_history ("avatarId", "userId", "appId", action) '
                 "VALUES (%s, %s, 'avatar-creator', 'uploaded')", [kept, ids["user"]])
    # By hand, as in the guide: the FK gone, a project deleted under its avatars, and
    # "sourceType" made nullable with a NULL in it.
    incident.sql('ALTER TABLE avatars DROP CONSTRAINT "avatars_projectId_fkey"')
    incident.sql('ALTER TABLE avatar_generations DROP CONSTRAINT '
                 '"avatar_generations_projectId_fkey"')
    incident.sql("DELETE FROM avatar_projects WHERE id = %s", [ids["project"]])
    incident.sql('ALTER TABLE avatars ALTER COLUMN "sourceType" DROP NOT NULL')
    incident.sql('UPDATE avatars SET "sourceType" = NULL WHERE id = %s', [kept])

    _, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["data-integrity"]
    objects = {(f.code, f.object) for f in groups[0].findings}
    assert objects == {("CHECK_FAILED", "check orphaned_avatars"),
                       ("CHECK_FAILED", "check generations_without_project"),
                       ("CHECK_FAILED", "check avatar_required_nulls"),
                       ("DRIFT_MISSING", "constraint avatars.avatars_projectId_fkey"),
                       ("DRIFT_MISSING",
                        "constraint avatar_generations.avatar_generations_projectId_fkey"),
                       ("DRIFT_CHANGED", "column avatars.sourceType")}

    dry = incident.run("data-integrity", dry_run=True)
    fill, recreate, restore = dry.steps
    assert [r["avatarId"] for r in fill.preview] == [kept]
    # data first: the affected rows are listed, and their project comes back; no delete
    assert recreate.preview == [{
        "projectId": ids["project"], "userId": ids["user"],
        "avatars": sorted([ids["avatar"], ids["avatar2"]]), "generations": [ids["generation"]]}]
    assert not recreate.destructive and "INSERT INTO avatar_projects" in recreate.sql
    assert not any(s.destructive for s in dry.steps)
    assert "DELETE FROM" not in fill.sql + recreate.sql + restore.sql
    assert 'ALTER TABLE "avatars" ALTER COLUMN "sourceType" SET NOT NULL' in restore.sql
    assert "ON DELETE CASCADE" in restore.sql
    assert len(incident.rows()["avatars"]) == 3  # the dry run changed nothing

    before = incident.rows()
    result = incident.run("data-integrity")
    assert result.outcome == "fixed", result.message
    assert [s.detail for s in result.steps] == [
        "1 row(s) changed, as shown", "1 row(s) changed, as shown", "3 statement(s) applied"]
    assert incident.findings() == []
    after = incident.rows()
    assert {t: ids_ for t, ids_ in after.items() if t != "avatar_projects"} == {
        t: ids_ for t, ids_ in before.items() if t != "avatar_projects"}  # every row kept
    assert incident.sql("SELECT name, \"userId\" FROM avatar_projects WHERE id = %s",
                        [ids["project"]]) == [("Recovered project", ids["user"])]
    assert incident.sql('SELECT "sourceType" FROM avatars WHERE id = %s', [kept]) == [("uploaded",)]

    # and it cannot happen again: deleting a project takes its avatars with it
    incident.sql("DELETE FROM avatar_projects WHERE id = %s", [keep_project])
    assert incident.rows()["avatars"] == {ids["avatar"], ids["avatar2"]}


def test_deleting_the_orphans_is_a_manual_runbook_listing_every_row(incident):
    ids = incident.ids
    incident.sql('ALTER TABLE avatars DROP CONSTRAINT "avatars_projectId_fkey"')
    incident.sql('ALTER TABLE avatar_generations DROP CONSTRAINT '
                 '"avatar_generations_projectId_fkey"')
    incident.sql("DELETE FROM avatar_projects WHERE id = %s", [ids["project"]])
    # doctor never routes to the destructive runbook
    assert incident.named() == ["data-integrity"]

    dry = incident.run("delete-orphans", dry_run=True)
    avatars, generations, _ = dry.steps
    assert avatars.destructive and generations.destructive
    usage = incident.sql('SELECT id FROM avatar_usage_history WHERE "avatarId" = %s',
                         [ids["avatar"]])
    by_avatar = {r["avatarId"]: r for r in avatars.preview}
    assert by_avatar[ids["avatar"]]["usageHistoryDeleted"] == [usage[0][0]]
    assert by_avatar[ids["avatar"]]["generationsUnlinked"] == [ids["generation"]]
    assert [r["generationId"] for r in generations.preview] == [ids["generation"]]
    assert len(incident.rows()["avatars"]) == 2  # the dry run deleted nothing

    with pytest.raises(Exception):  # noqa: B017 - no --yes: refused (dev has no terminal)
        incident.run("delete-orphans", yes=False)
    assert len(incident.rows()["avatars"]) == 2

    result = incident.run("delete-orphans")
    assert result.outcome == "fixed", result.message
    assert incident.rows()["avatars"] == set()
    assert incident.rows()["avatar_generations"] == set()
    report = result.report_md.read_text()
    assert ids["avatar"] in report and ids["avatar2"] in report and usage[0][0] in report
    assert incident.findings() == []


def test_a_delete_needs_exactly_the_rows_that_were_shown(incident, monkeypatch):
    ids = incident.ids
    incident.sql('ALTER TABLE avatars DROP CONSTRAINT "avatars_projectId_fkey"')
    incident.sql("DELETE FROM avatar_projects WHERE id = %s", [ids["project"]])
    from shipshape.errors import Refused
    from shipshape.ops import runbooks

    # Another orphan appears between the plan (2 rows shown) and the delete.
    fix = runbooks.STEP_KINDS["fix"]
    real_plan = fix.plan

    def plan_then_orphan(ctx, planned):
        real_plan(ctx, planned)
        if planned.step.id == "delete-avatars":
            incident.sql('INSERT INTO avatars ("userId", "projectId", name, "baseImageUrl") '
                         "VALUES (%s, 'gone', 'Late', 'https://cdn.example.test/l.png')",
                         [ids["user"]])

    monkeypatch.setitem(runbooks.STEP_KINDS, "fix", dataclasses.replace(fix, plan=plan_then_orphan))
    with pytest.raises(Refused) as refused:
        incident.run("delete-orphans")
    assert "would change 3 row(s), but the plan showed 2" in str(refused.value)
    assert len(incident.rows()["avatars"]) == 3  # rolled back: nothing deleted


def test_fk_without_cascade_and_missing_indexes_are_restored(incident, app):
    incident.sql(NO_CASCADE)
    for index in ("avatars_userId_idx", "avatars_projectId_idx", "avatars_sourceType_idx"):
        incident.sql(f'DROP INDEX "{index}"')
    user = app.user()
    project = user.project()
    avatar = user.post(f"/projects/{project['id']}/avatars",
                       json={"name": "Maya", "baseImageUrl": "https://cdn.example.test/m.png"})
    assert avatar.status_code == 201
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # the guide's error
        incident.sql("DELETE FROM avatar_projects WHERE id = %s", [project["id"]])
    incident.sql("REVOKE INSERT ON avatars FROM avatar_app")  # and a grant lost by hand
    upload = user.post(f"/projects/{project['id']}/avatars",
                       json={"name": "Ken", "baseImageUrl": "https://cdn.example.test/k.png"})
    assert upload.status_code >= 500

    _, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["schema-drift"]
    assert {(f.code, f.object) for f in groups[0].findings} == {
        ("DRIFT_CHANGED", "constraint avatars.avatars_projectId_fkey"),
        ("DRIFT_MISSING", "index avatars_userId_idx"),
        ("DRIFT_MISSING", "index avatars_projectId_idx"),
        ("DRIFT_MISSING", "index avatars_sourceType_idx"),
        ("DRIFT_CHANGED", "grant avatars")}

    result = incident.run("schema-drift")
    assert result.outcome == "fixed", result.message
    reapply, restore = result.steps
    assert reapply.status == "skipped"
    assert restore.sql.splitlines()[0] == (
        'ALTER TABLE "avatars" DROP CONSTRAINT IF EXISTS "avatars_projectId_fkey", ADD CONSTRAINT '
        '"avatars_projectId_fkey" FOREIGN KEY ("projectId") REFERENCES avatar_projects(id) '
        'ON DELETE CASCADE;')
    assert restore.sql.count("CREATE INDEX") == 3
    assert 'GRANT DELETE, INSERT, SELECT, UPDATE ON "avatars" TO "avatar_app"' in restore.sql
    assert incident.findings() == []
    upload = user.post(f"/projects/{project['id']}/avatars",
                       json={"name": "Ken", "baseImageUrl": "https://cdn.example.test/k.png"})
    assert upload.status_code == 201, upload.text

    deleted = user.delete(f"/projects/{project['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deletedAvatars"] == 2
    assert ready(app)[0] == 200


def test_missing_indexes_in_prod_are_built_concurrently(fresh_dsn, make_target, tmp_path,
                                                       shipped_runbooks):
    from tests.incidents.conftest import Incident

    case = Incident(fresh_dsn, make_target(fresh_dsn, "prod"), tmp_path / "reports",
                    shipped_runbooks)
    assert case.deploy().exit_code == 0
    case.populate()
    for index in ("avatars_userId_idx", "avatars_sourceType_idx"):
        case.sql(f'DROP INDEX "{index}"')
    assert case.named() == ["schema-drift"]

    result = case.run("schema-drift", reason="indexes dropped during an investigation")
    assert result.outcome == "fixed", result.message
    restore = result.steps[1]
    assert restore.sql.count("CREATE INDEX CONCURRENTLY") == 2
    assert case.findings() == []
    assert case.sql("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == [(0,)]
