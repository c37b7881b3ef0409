"""Incident 3: the migration files were git-ignored, the 18 avatar columns were missing,
and they were then added by hand in production.

Both sides of it: the history says 0005 is applied but its columns are missing
(schema-drift re-runs 0005 with its own SQL), and the columns exist while no history
records them (hand-made-schema adopts them, but only after a shadow database built from
migrations 0001..0005 proves that they are exactly what 0005 creates)."""

from __future__ import annotations

import psycopg
import pytest

from shipshape import db
from shipshape.engine import migrations
from shipshape.errors import Refused
from tests.incidents.conftest import ready

COLUMNS_18 = ["personaName", "personaAge", "personaPersonality", "personaBackground", "gender",
              "ageRange", "ethnicity", "bodyType", "hairStyle", "hairColor", "eyeColor",
              "skinTone", "style", "sourceType", "generationPrompt", "seedUsed", "usageCount",
              "lastUsedAt"]

# What production ran by hand (the incident's ALTER TABLEs): types and defaults that are
# not what 0005 declares (nullable "sourceType", "usageCount"; timestamp without time zone).
BY_HAND_IN_THE_INCIDENT = """
ALTER TABLE avatars ADD COLUMN "personaName" TEXT;
ALTER TABLE avatars ADD COLUMN "personaAge" INTEGER;
ALTER TABLE avatars ADD COLUMN "personaPersonality" TEXT;
ALTER TABLE avatars ADD COLUMN "personaBackground" TEXT;
ALTER TABLE avatars ADD COLUMN "gender" TEXT;
ALTER TABLE avatars ADD COLUMN "ageRange" TEXT;
ALTER TABLE avatars ADD COLUMN "ethnicity" TEXT;
ALTER TABLE avatars ADD COLUMN "bodyType" TEXT;
ALTER TABLE avatars ADD COLUMN "hairStyle" TEXT;
ALTER TABLE avatars ADD COLUMN "hairColor" TEXT;
ALTER TABLE avatars ADD COLUMN "eyeColor" TEXT;
ALTER TABLE avatars ADD COLUMN "skinTone" TEXT;
ALTER TABLE avatars ADD COLUMN "style" TEXT;
ALTER TABLE avatars ADD COLUMN "sourceType" TEXT;
ALTER TABLE avatars ADD COLUMN "generationPrompt" TEXT;
ALTER TABLE avatars ADD COLUMN "seedUsed" INTEGER;
ALTER TABLE avatars ADD COLUMN "usageCount" INTEGER DEFAULT 0;
ALTER TABLE avatars ADD COLUMN "lastUsedAt" TIMESTAMP;
"""


def columns(incident) -> set[str]:
    return {r[0] for r in incident.sql(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'avatars'::regclass AND attnum > 0 "
        "AND NOT attisdropped")}


def test_columns_missing_while_the_history_says_applied(incident, app):
    user = app.user()
    project = user.project()
    incident.sql("ALTER TABLE avatars " + ", ".join(f'DROP COLUMN "{c}"' for c in COLUMNS_18))
    assert len(columns(incident)) == 8
    assert incident.sql("SELECT success FROM shipshape.history WHERE version = 5") == [(True,)]
    upload = user.post(f"/projects/{project['id']}/avatars",
                       json={"name": "Maya", "baseImageUrl": "https://cdn.example.test/m.png"})
    assert upload.status_code == 503 and upload.json()["error"]["code"] == "SCHEMA_MISMATCH"

    _, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["schema-drift"]
    missing = {f.object for f in groups[0].findings if f.code == "DRIFT_MISSING"}
    assert {f"column avatars.{c}" for c in COLUMNS_18} <= missing
    assert "index avatars_sourceType_idx" in missing  # dropped with its column

    result = incident.run("schema-drift")
    assert result.outcome == "fixed", result.message
    reapply, restore = result.steps
    assert "re-run 0005_avatar_persona_columns" in reapply.summary
    assert reapply.sql.count("    ADD COLUMN ") == 18
    assert restore.sql == 'CREATE INDEX "avatars_sourceType_idx" ON public.avatars USING btree ("sourceType");'
    assert incident.findings() == []
    assert len(columns(incident)) == 26
    row = incident.sql("SELECT applied_by FROM shipshape.history WHERE version = 5")[0][0]
    assert row.startswith("runbook schema-drift by ")

    upload = user.post(f"/projects/{project['id']}/avatars",
                       json={"name": "Maya", "baseImageUrl": "https://cdn.example.test/m.png",
                             "personaName": "Maya Chen"})
    assert upload.status_code == 201, upload.text
    assert upload.json()["avatar"]["sourceType"] == "uploaded"
    assert ready(app)[0] == 200


def rolled_back_to(incident, version: int) -> list[migrations.Migration]:
    loaded = migrations.load(incident.sql_dir, incident.env)
    with db.connect(incident.target) as conn, db.advisory_lock(conn, "10s"):
        migrations.rollback(conn, incident.env, loaded, version)
    return loaded


def test_columns_added_by_hand_exactly_as_0005_are_adopted_after_proof(incident):
    loaded = rolled_back_to(incident, 4)
    by_version = {m.version: m for m in loaded}
    incident.sql(by_version[5].sql)  # by hand: the same statements, no history row
    assert incident.sql("SELECT max(version) FROM shipshape.history") == [(4,)]

    _, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["hand-made-schema"]
    codes = {f.code for f in groups[0].findings}
    assert {"DRIFT_UNEXPECTED", "MIGRATION_PENDING"} <= codes

    result = incident.run("hand-made-schema")
    assert result.outcome == "fixed", result.message
    adopt, migrate, _seed = result.steps
    assert adopt.data.version == 5 and "0005_avatar_persona_columns" in adopt.summary
    assert "migrations 0001..0005" in adopt.sql and "INSERT INTO shipshape.history" in adopt.sql
    assert migrate.detail.startswith("7 migration(s) applied: 0006_avatar_generations")
    assert incident.findings() == []
    assert incident.sql("SELECT applied_by FROM shipshape.history WHERE version = 5")[0][0] \
        .startswith("baseline by runbook hand-made-schema")


def test_a_database_without_any_history_is_baselined_by_verify(incident, app):
    loaded = rolled_back_to(incident, 4)
    incident.sql({m.version: m for m in loaded}[5].sql)
    incident.sql("DROP SCHEMA shipshape CASCADE")  # built by another tool: no history at all

    _, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["hand-made-schema"]
    assert any(f.object == "table avatars" and f.code == "DRIFT_UNEXPECTED"
               for f in groups[0].findings)

    result = incident.run("hand-made-schema")
    assert result.outcome == "fixed", result.message
    assert result.steps[0].detail == "recorded 5 migration(s) up to 0005 after proving the schema"
    assert incident.findings() == []
    assert incident.sql("SELECT count(*) FROM shipshape.history WHERE applied_by LIKE 'baseline by %'") \
        == [(5,)]
    assert ready(app)[0] == 200


def test_columns_added_by_hand_as_in_the_incident_are_refused_and_escalated(incident):
    rolled_back_to(incident, 4)
    incident.sql(BY_HAND_IN_THE_INCIDENT)
    history = incident.sql("SELECT * FROM shipshape.history ORDER BY version")

    _, groups = incident.doctor()
    assert groups[0].runbook.id == "hand-made-schema"

    with pytest.raises(Refused) as refused:
        incident.run("hand-made-schema")
    message = str(refused.value)
    assert "Refusing to baseline" in message and "0001..0005" in message
    assert "column avatars.sourceType changed" in message
    assert "column avatars.lastUsedAt changed" in message
    assert "Escalate to the service's database owner" in message
    result = refused.value.result
    assert result.outcome == "escalated" and result.exit_code == 3
    assert result.report_md.exists() and "## Escalate" in result.report_md.read_text()
    # baselined only after verification: nothing was recorded, nothing changed
    assert incident.sql("SELECT * FROM shipshape.history ORDER BY version") == history
    with psycopg.connect(incident.dsn) as conn:
        assert conn.execute("SELECT to_regclass('shipshape.runbook_runs')").fetchone() == (None,)


# --- one column dropped by hand: the commonest drift -----------------------------------------

def avatar_rows(incident, without: str) -> dict[str, dict]:
    """Every avatar, each value but the dropped column's, by id."""
    return {r[0]: r[1] for r in incident.sql(
        "SELECT id, to_jsonb(a) - %s FROM avatars a", [without])}


def test_one_dropped_column_is_added_back_and_every_value_kept(incident, app):
    user = app.user()
    project = user.project()
    maya = user.post(f"/projects/{project['id']}/avatars",
                     json={"name": "Maya", "baseImageUrl": "https://cdn.example.test/m.png",
                           "personaName": "Maya Chen", "personaAge": 31, "hairColor": "black",
                           "eyeColor": "brown", "style": "studio"}).json()["avatar"]
    incident.sql('UPDATE avatars SET "usageCount" = 7, "sourceType" = \'generated\' WHERE id = %s',
                 [incident.ids["avatar2"]])
    before = avatar_rows(incident, "hairColor")
    history = incident.sql("SELECT * FROM shipshape.history ORDER BY version")
    incident.sql('ALTER TABLE avatars DROP COLUMN "hairColor"')  # 1 of 0005's 18 columns
    broken = user.get(f"/avatars/{maya['id']}")
    assert broken.status_code == 503 and broken.json()["error"]["code"] == "SCHEMA_MISMATCH"
    assert "hairColor" in broken.text

    _, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["schema-drift"]
    assert [(f.code, f.object) for f in groups[0].findings] == [
        ("DRIFT_MISSING", "column avatars.hairColor")]

    result = incident.run("schema-drift")
    assert result.outcome == "fixed", result.message
    reapply, restore = result.steps
    # 0005 is not re-run: 17 of its 18 columns exist, and its SQL would fail on them
    assert reapply.status == "skipped"
    assert reapply.skip.startswith("0005_avatar_persona_columns is not re-run: 1 of the 18 "
                                   "tables and columns it creates is missing "
                                   "(column avatars.hairColor)")
    assert restore.sql == 'ALTER TABLE "avatars" ADD COLUMN "hairColor" text;'
    assert restore.status == "done" and restore.left == []
    assert incident.findings() == []
    assert incident.sql("SELECT * FROM shipshape.history ORDER BY version") == history

    # no value changed; the dropped column's are gone with it (NULL, its default)
    assert avatar_rows(incident, "hairColor") == before
    assert incident.sql('SELECT DISTINCT "hairColor" FROM avatars') == [(None,)]
    got = user.get(f"/avatars/{maya['id']}")
    assert got.status_code == 200, got.text
    avatar = got.json()["avatar"]
    assert (avatar["personaName"], avatar["personaAge"], avatar["eyeColor"], avatar["style"],
            avatar["hairColor"]) == ("Maya Chen", 31, "brown", "studio", None)
    assert ready(app)[0] == 200


def test_a_dropped_column_comes_back_before_the_index_on_it(incident):
    incident.sql('UPDATE avatars SET "personaName" = name, "usageCount" = 3')
    before = avatar_rows(incident, "sourceType")
    # DROP COLUMN takes 0010's avatars_sourceType_idx with it
    incident.sql('ALTER TABLE avatars DROP COLUMN "sourceType"')
    assert incident.sql("SELECT to_regclass('\"avatars_sourceType_idx\"')") == [(None,)]

    _, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["schema-drift"]
    assert {(f.code, f.object) for f in groups[0].findings} >= {
        ("DRIFT_MISSING", "column avatars.sourceType"),
        ("DRIFT_MISSING", "index avatars_sourceType_idx")}

    result = incident.run("schema-drift")
    assert result.outcome == "fixed", result.message
    reapply, restore = result.steps
    assert reapply.status == "skipped"
    assert restore.sql.splitlines() == [
        'ALTER TABLE "avatars" ADD COLUMN "sourceType" text DEFAULT \'uploaded\'::text NOT NULL;',
        'CREATE INDEX "avatars_sourceType_idx" ON public.avatars USING btree ("sourceType");']
    assert restore.sha256 == result.steps[1].sha256  # recorded as shown
    assert incident.sql("SELECT sql_sha256 FROM shipshape.runbook_steps WHERE step = 'restore'") \
        == [(restore.sha256,)]
    assert incident.findings() == []
    assert avatar_rows(incident, "sourceType") == before
    assert incident.sql('SELECT DISTINCT "sourceType" FROM avatars') == [("uploaded",)]


def test_a_dropped_not_null_column_of_a_table_with_rows_is_escalated(incident):
    from shipshape.errors import ProblemsFound

    # "userId" is NOT NULL without a default: its FK and two indexes go with it
    incident.sql('ALTER TABLE avatars DROP COLUMN "userId"')
    before = avatar_rows(incident, "userId")
    shape = columns(incident)
    history = incident.sql("SELECT * FROM shipshape.history ORDER BY version")
    _, groups = incident.doctor()
    assert [g.runbook.id for g in groups] == ["schema-drift"]

    with pytest.raises(ProblemsFound) as unresolved:
        incident.run("schema-drift")
    assert unresolved.value.exit_code == 2
    message = str(unresolved.value)
    assert "verify still finds" in message and "DRIFT_MISSING column avatars.userId" in message
    assert "Escalate to the service's database owner when:" in message
    assert "NOT NULL without a default" in message
    result = unresolved.value.result
    assert result.outcome == "unresolved"
    reapply, restore = result.steps
    assert reapply.status == "skipped" and "0004_avatars is not re-run" in reapply.skip
    # nothing is invented for the rows, and nothing is built on the missing column
    assert restore.status == "skipped" and restore.sql == ""
    left = "\n".join(restore.left)
    assert ("column avatars.userId is missing (expected text, not null) (it is NOT NULL "
            "without a default and avatars has rows") in left
    for needs in ("index avatars_userId_idx", "index avatars_userId_createdAt_idx",
                  "constraint avatars.avatars_userId_fkey"):
        assert f"{needs} is missing" in left
    assert left.count("(it needs column avatars.userId, which stays missing)") == 3
    report = result.report_md.read_text()
    assert "## Escalate" in report and "left for escalation: column avatars.userId" in report
    # nothing changed
    assert columns(incident) == shape
    assert avatar_rows(incident, "userId") == before
    assert incident.sql("SELECT * FROM shipshape.history ORDER BY version") == history


def test_a_dropped_table_comes_back_with_everything_later_migrations_built_on_it(incident):
    """0004 and 0005 are re-run (every object of theirs is missing); restore, planned on
    the schema they leave, rebuilds 0010's indexes and the foreign keys other tables had
    to avatars: in one run, with the SQL shown."""
    incident.sql("DELETE FROM avatars")  # its FKs clear the rows that point at it
    incident.sql("DROP TABLE avatars CASCADE")  # and go with it

    result = incident.run("schema-drift")
    assert result.outcome == "fixed", result.message
    reapply, restore = result.steps
    assert reapply.data.versions == [4, 5]
    assert restore.status == "done"
    assert restore.sql.count("CREATE INDEX") == 3 and restore.sql.count("FOREIGN KEY") == 2
    assert incident.findings() == []
