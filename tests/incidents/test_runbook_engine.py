"""`invoke doctor` and `invoke runbook.run` as an operator runs them: exit codes,
confirmation without a terminal, prod's reason, dry runs, reports without secrets, and
the operations no shipped runbook uses yet (rollback) through a runbook of a test's own."""

from __future__ import annotations

import json
import textwrap

import psycopg
import pytest

from shipshape.engine import identity
from shipshape.errors import ConfigError, Refused
from shipshape.ops import runbooks
from tests.conftest import run_invoke
from tests.treeutil import small_tree

PASSWORD = "s3cret-Runbook-pw"  # trust auth ignores it; no output or report may show it


def with_password(dsn: str) -> str:
    """The DSN as a URL with a password in it, as DATABASE_URL usually is."""
    parts = psycopg.conninfo.conninfo_to_dict(dsn)
    return (f"postgresql://{parts.get('user', 'postgres')}:{PASSWORD}@{parts.get('host', '127.0.0.1')}"
            f":{parts.get('port', 5432)}/{parts['dbname']}")


@pytest.fixture
def cli_env(tmp_path, incident_state_dir):
    return {"SHIPSHAPE_STATE_DIR": str(incident_state_dir),
            "SHIPSHAPE_REPORTS_DIR": str(tmp_path / "cli-reports")}


def test_doctor_and_runbook_from_the_command_line(incident, cli_env, tmp_path):
    dsn = with_password(incident.dsn)
    healthy = run_invoke("doctor", "--env", "dev", "--dsn", dsn, env=cli_env)
    assert healthy.returncode == 0, healthy.stderr
    assert "✓ healthy: every check passed." in healthy.stdout

    incident.sql("UPDATE ai_models SET enabled = false WHERE tier = 'basic'")
    sick = run_invoke("doctor", "--env", "dev", "--dsn", dsn, env=cli_env)
    assert sick.returncode == 2
    assert "1. models-missing: AI models missing or disabled" in sick.stdout
    assert "run: invoke runbook.run models-missing --env dev" in sick.stdout
    assert "SEED_DIFFERS  seed ai_models.yaml" in sick.stdout
    assert "Start with `invoke runbook.run models-missing --env dev`" in sick.stderr

    # no terminal, no --yes: refused, with the plan shown and nothing changed
    refused = run_invoke("runbook.run", "models-missing", "--env", "dev", "--dsn", dsn,
                         env=cli_env, input="")
    assert refused.returncode == 3, refused.stderr
    assert "plan (1 step(s), in order):" in refused.stdout
    assert "rerun with --yes" in refused.stderr
    assert incident.sql("SELECT count(*) FROM ai_models WHERE enabled") == [(2,)]
    assert not (tmp_path / "cli-reports").exists()

    # the wrong runbook: exit 2, one JSON document naming the right one
    wrong = run_invoke("runbook.run", "schema-drift", "--env", "dev", "--dsn", dsn, "--json",
                       env=cli_env)
    assert wrong.returncode == 2, wrong.stderr
    document = json.loads(wrong.stdout)
    assert document["outcome"] == "elsewhere" and document["exit_code"] == 2
    assert document["next"] == [{"runbook": "models-missing",
                                 "command": "invoke runbook.run models-missing --env dev"}]

    fixed = run_invoke("runbook.run", "models-missing", "--env", "dev", "--dsn", dsn, "--yes",
                       "--reason", "incident 1 again", "--json", env=cli_env)
    assert fixed.returncode == 0, fixed.stderr
    document = json.loads(fixed.stdout)
    assert document["outcome"] == "fixed" and document["reason"] == "incident 1 again"
    assert document["steps"][0]["sql_sha256"] and document["steps"][0]["status"] == "done"
    assert incident.sql("SELECT count(*) FROM ai_models WHERE enabled") == [(4,)]

    reports = sorted((tmp_path / "cli-reports").iterdir())
    assert [p.suffix for p in reports] == [".json", ".md"]
    report = json.loads(reports[0].read_text())
    assert report["operator"] and report["reason"] == "incident 1 again"
    assert report["findings_before"][0]["code"] == "SEED_DIFFERS"
    assert report["findings_after"] == []
    assert report["steps"][0]["duration_ms"] >= 0 and len(report["steps"][0]["sql_sha256"]) == 64
    assert [e["event"].split(":")[0] for e in report["timeline"]][:2] == ["detect", "detected 1 finding(s), 1 for models-missing"]
    assert "postgres:***@" in report["target"]
    # no secret anywhere: outputs, both reports, the run's row
    for text in (healthy.stdout, healthy.stderr, sick.stdout, sick.stderr, refused.stdout,
                 refused.stderr, wrong.stdout, wrong.stderr, fixed.stdout, fixed.stderr,
                 *(p.read_text() for p in reports)):
        assert PASSWORD not in text
    assert PASSWORD not in str(incident.sql("SELECT * FROM shipshape.runbook_runs"))


def test_prod_needs_yes_and_a_reason_and_dry_run_changes_nothing(incident, make_target, tmp_path):
    prod = make_target(incident.dsn, "prod")
    incident.sql("DELETE FROM ai_models WHERE tier = 'pro'")
    case = incident
    case.target, case.env = prod, prod.env

    dry = case.run("models-missing", dry_run=True, yes=False)
    assert dry.outcome == "dry-run" and dry.steps[0].sql
    assert case.sql("SELECT to_regclass('shipshape.runbook_runs')") == [(None,)]
    assert not (tmp_path / "reports").exists()

    with pytest.raises(Refused, match=r'prod: `--reason "\.\.\."` is required'):
        case.run("models-missing", yes=True)
    with pytest.raises(Refused, match=r'rerun with --yes --reason "\.\.\."'):
        case.run("models-missing", yes=False, reason="restore the pro model")
    with pytest.raises(Refused, match="rerun with --yes"):  # outside local a prompt is no --yes
        case.run("models-missing", yes=False, reason="x", confirm=lambda q: True)
    assert case.sql("SELECT count(*) FROM ai_models") == [(3,)]

    result = case.run("models-missing", yes=True, reason="restore the pro model")
    assert result.outcome == "fixed"
    assert case.sql("SELECT status, reason FROM shipshape.runbook_runs") == [
        ("fixed", "restore the pro model")]
    assert "| reason | restore the pro model |" in result.report_md.read_text()


def test_a_stack_of_the_prod_profile_needs_a_reason_too(incident, tmp_path):
    from shipshape.settings import load_environment
    from shipshape.targets import Target

    (tmp_path / "Pulumi.eu-prod.yaml").write_text("config:\n  shipshape:profile: prod\n")
    env = load_environment("eu-prod", config_dir=tmp_path, environ={})
    incident.sql("DELETE FROM ai_models WHERE tier = 'pro'")
    incident.target, incident.env = Target(env, incident.dsn, "test"), env
    with pytest.raises(Refused, match=r'eu-prod: `--reason "\.\.\."` is required'):
        incident.run("models-missing", yes=True)
    with pytest.raises(Refused, match=r'rerun with --yes --reason "\.\.\."'):
        incident.run("models-missing", yes=False, reason="restore the pro model")
    assert incident.sql("SELECT count(*) FROM ai_models WHERE tier = 'pro'") == [(0,)]
    assert incident.run("models-missing", yes=True, reason="restore").outcome == "fixed"


def test_local_asks_on_a_terminal_and_refuses_without_one(incident, make_target):
    local = make_target(incident.dsn, "local")
    incident.target, incident.env = local, local.env
    with psycopg.connect(incident.dsn) as conn:  # the deliberate re-stamp of `db.stamp`
        identity.stamp(conn, "local", by="test")
    healthy = incident.run("schema-drift")
    assert healthy.outcome == "nothing-to-do" and healthy.exit_code == 0
    assert healthy.report_md is None
    with pytest.raises(ConfigError, match="Unknown runbook 'push-schema'"):
        incident.run("push-schema")

    incident.sql("DELETE FROM ai_models")
    with pytest.raises(Refused, match="No terminal to confirm on"):
        incident.run("models-missing", yes=False, confirm=None)
    asked = []
    with pytest.raises(Refused, match="Not confirmed"):
        incident.run("models-missing", yes=False, confirm=lambda q: asked.append(q) or False)
    assert asked and asked[0].startswith("Run 1 step(s) of models-missing on ")
    result = incident.run("models-missing", yes=False, confirm=lambda q: True)
    assert result.outcome == "fixed"


ROLLBACK_BOOK = """\
id: undo-price
title: Undo the price column
priority: 10
summary: Roll back the newest migration of the small test tree.
symptoms: [a test]
detects: [CHECK_FAILED check negative_price]
steps:
  - id: rollback
    do: rollback
    to: 1
    destructive: {destructive}
    why: Roll back 0002 with its own rollback file.
verify:
  absent: [CHECK_FAILED]
escalate:
  when: [it fails]
"""


def test_rollback_step_must_say_it_is_destructive(fresh_dsn, make_target, tmp_path):
    from shipshape.ops import pipeline

    tree = small_tree(tmp_path / "sql")
    books = tmp_path / "books"
    books.mkdir()
    target = make_target(fresh_dsn, "dev")
    pipeline.deploy(target, tree)
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("UPDATE items SET price = -1 WHERE name = 'pear'")

    (books / "undo-price.yaml").write_text(ROLLBACK_BOOK.format(destructive="false"))
    with pytest.raises(ConfigError, match=r"steps\[0\]\.destructive: the rollback of "
                                          r"0002_item_price is destructive"):
        runbooks.run(target, tree, "undo-price", runbooks_dir=books, yes=True,
                     reports_dir=tmp_path / "r")

    (books / "undo-price.yaml").write_text(ROLLBACK_BOOK.format(destructive="true"))
    result = runbooks.run(target, tree, "undo-price", runbooks_dir=books, dry_run=True)
    assert "ALTER TABLE items DROP COLUMN price" in result.steps[0].sql
    assert result.steps[0].destructive
    staging = make_target(fresh_dsn, "staging")  # forbids destructive statements
    with pytest.raises(Refused, match="forbids destructive statements"):
        runbooks.run(staging, tree, "undo-price", runbooks_dir=books, yes=True,
                     reports_dir=tmp_path / "r")


def test_schema_errors_name_the_file_and_field_and_exit_5(tmp_path):
    books = tmp_path / "books"
    books.mkdir()
    (books / "push.yaml").write_text(textwrap.dedent("""\
        id: push
        title: Push the schema
        priority: 1
        summary: What incident 2 did.
        symptoms: [anything]
        detects: [MIGRATION_PENDING, SCHEMA_BAD]
        steps:
          - id: push
            do: db-push
            accept_data_loss: true
            why: fast
        escalate: {when: [never]}
        """))
    result = run_invoke("runbook.list", "--runbooks-dir", str(books))
    assert result.returncode == 5
    err = " ".join(result.stderr.split())
    assert f"{books / 'push.yaml'}: detects[1]: unknown finding code 'SCHEMA_BAD'" in err
    assert f"{books / 'push.yaml'}: steps[0].do: unknown operation 'db-push'" in err
    assert "(line 8)" in err and "Traceback" not in result.stderr


def test_restore_adds_columns_of_every_shape_it_can_and_leaves_an_identity(
        fresh_dsn, make_target, tmp_path, shipped_runbooks):
    """schema-drift on a tree of the test's own: a collated column, a generated one (on a
    table with rows), a NOT NULL one without a default on an empty table come back; an
    identity column would number the rows, so it is left for escalation."""
    from shipshape.errors import ProblemsFound
    from shipshape.ops import pipeline
    from tests.treeutil import write_migration

    tree = small_tree(tmp_path / "sql")
    write_migration(tree, "0003_item_shapes", textwrap.dedent("""\
        ALTER TABLE items
            ADD COLUMN label text COLLATE "C",
            ADD COLUMN price_cents integer GENERATED ALWAYS AS (price * 100) STORED,
            ADD COLUMN serial_no integer GENERATED BY DEFAULT AS IDENTITY;
        CREATE TABLE tags (id integer PRIMARY KEY, slug text NOT NULL);
        """), "-- shipshape:destructive\nDROP TABLE tags;\n"
                 "ALTER TABLE items DROP COLUMN label, DROP COLUMN price_cents, "
                 "DROP COLUMN serial_no;\n")
    target = make_target(fresh_dsn, "dev")
    assert pipeline.deploy(target, tree).exit_code == 0
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE items DROP COLUMN label, DROP COLUMN price_cents, "
                     "DROP COLUMN serial_no")
        conn.execute("ALTER TABLE tags DROP COLUMN slug")

    with pytest.raises(ProblemsFound) as unresolved:
        runbooks.run(target, tree, "schema-drift", runbooks=shipped_runbooks, yes=True,
                     reports_dir=tmp_path / "r")
    reapply, restore = unresolved.value.result.steps
    assert reapply.status == "skipped" and "0003_item_shapes is not re-run" in reapply.skip
    assert restore.status == "done"
    assert restore.sql.splitlines() == [
        'ALTER TABLE "items" ADD COLUMN "label" text COLLATE "pg_catalog"."C";',
        'ALTER TABLE "tags" ADD COLUMN "slug" text NOT NULL;',
        ('ALTER TABLE "items" ADD COLUMN "price_cents" integer GENERATED ALWAYS AS '
         '((price * 100)) STORED;')]
    assert any(item.startswith("column items.serial_no is missing") and "identity" in item
               for item in restore.left)
    remaining = {f.object for f in unresolved.value.findings}
    assert remaining == {"column items.serial_no", "sequence items_serial_no_seq"}
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT name, price_cents FROM items ORDER BY name").fetchall() \
            == [("apple", 300), ("pear", 500)]


def test_a_run_prints_its_final_message_once_on_stderr(incident, cli_env):
    incident.sql("UPDATE ai_models SET enabled = false")
    fixed = run_invoke("runbook.run", "models-missing", "--env", "dev", "--dsn", incident.dsn,
                       "--yes", env=cli_env)
    assert fixed.returncode == 0, fixed.stderr
    final = "models-missing: fixed; verify finds none of"
    assert fixed.stderr.count(final) == 1 and final not in fixed.stdout
    assert "plan (1 step(s), in order):" in fixed.stdout  # the plan and the steps: stdout
    assert "models-missing: fixed\n" in fixed.stdout
    assert fixed.stderr.count("report: ") == 1

    incident.sql("UPDATE ai_models SET enabled = false")
    as_json = run_invoke("runbook.run", "models-missing", "--env", "dev", "--dsn", incident.dsn,
                         "--yes", "--json", env=cli_env)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["outcome"] == "fixed"  # stdout: the document alone
