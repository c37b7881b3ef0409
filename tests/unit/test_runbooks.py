"""Runbooks without a database: the schema and its messages (file and field), which
runbook each finding goes to, the shipped runbooks and fixes, and docs/runbooks.md being
exactly what `invoke runbook.docs` renders."""

from __future__ import annotations

import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipshape.engine import findings
from shipshape.engine.findings import Finding
from shipshape.engine.render import Renderer, directives
from shipshape.errors import ConfigError
from shipshape.ops import doctor, runbooks, triage
from shipshape.settings import KNOWN_ENVS, load_environment

ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = ROOT / "sql"
BOOKS = ROOT / "runbooks"

GOOD = textwrap.dedent("""\
    id: {id}
    title: A title
    priority: {priority}
    summary: What broke.
    symptoms: [a symptom]
    detects: [{detects}]
    also_clears: [{also}]
    steps:
      - id: seed
        do: seed
        why: Seed it.
    verify:
      absent: [{detects}]
    escalate:
      when: [it fails]
    """)


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def book(directory, id_, priority=50, detects="SEED_MISSING", also="APP_NOT_READY"):
    return write(directory, id_, GOOD.format(id=id_, priority=priority, detects=detects, also=also))


def finding(code, obj="x"):
    return Finding(code, "error", obj, "message", "fix")


# --- the shipped runbooks -------------------------------------------------------------------

def shipped():
    return runbooks.load(BOOKS, sql_dir=SQL_DIR)


def test_the_shipped_runbooks_load_in_priority_order():
    books = shipped()
    assert [b.id for b in books] == [
        "database-unreachable", "blocking-session", "ahead-of-code", "edited-migration",
        "failed-migration",
        "hand-made-schema", "migrations-not-applied", "data-integrity", "delete-orphans",
        "schema-drift",
        "models-missing", "app-not-ready"]
    for b in books:
        assert b.path.stem == b.id and b.symptoms and b.escalate_when
        assert b.steps or b.escalate_only
        if b.steps:
            assert b.verify_absent, b.id


def test_every_code_verify_produces_is_known_to_doctor():
    source = (ROOT / "shipshape" / "engine" / "verify.py").read_text()
    produced = set(re.findall(r'"((?:MIGRATION|DRIFT|SEED|CHECK)_[A-Z_]+)"', source))
    assert produced and produced <= set(findings.CODES)


def test_every_runbook_with_steps_is_replayed_against_postgresql():
    replays = "\n".join(p.read_text() for p in (ROOT / "tests" / "incidents").glob("test_*.py"))
    for b in shipped():
        if b.steps:
            assert re.search(rf'\.run\("{b.id}"', replays), f"no incident replay runs {b.id}"


def test_no_runbook_can_push_a_schema_or_accept_data_loss():
    """Incident 2's fallback, `db push --accept-data-loss`, has no equivalent: no operation
    pushes a schema, no step argument accepts data loss, no code path takes such a flag."""
    assert not {"push", "db-push", "reset"} & set(runbooks.STEP_KINDS)
    for kind in runbooks.STEP_KINDS.values():
        assert not [a for a in kind.args if "accept" in a.name or "force" in a.name]
    for b in shipped():
        for step in b.steps:
            assert not [a for a in step.args if "accept" in a], (b.id, step.id)
    for path in [*(SQL_DIR / "fixes").glob("*"), *(ROOT / "shipshape").rglob("*.py"),
                 *(ROOT / "shipshape").rglob("*.sql")]:
        text = path.read_text()
        assert "accept-data-loss" not in text and "accept_data_loss" not in text, path


def test_each_step_kind_is_one_module_and_the_registry_holds_them_all():
    """One table of step kinds: every module of steps/ that defines a kind (its plan and its
    run there) is registered under the module's name, and the registry holds nothing else."""
    import importlib
    import pkgutil

    from shipshape.ops.runbooks import steps

    defined = {}
    for info in pkgutil.iter_modules(steps.__path__):
        module = importlib.import_module(f"{steps.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, runbooks.StepKind) and value.plan.__module__ == module.__name__:
                assert value.run.__module__ == module.__name__ and value.doc, info.name
                defined[info.name] = value
    assert defined == runbooks.STEP_KINDS
    assert list(runbooks.STEP_KINDS) == [
        "migrate", "seed", "baseline", "complete", "rollback", "fix", "reapply", "restore",
        "rerecord",
        "terminate"]


@pytest.mark.parametrize("env_name", KNOWN_ENVS)
def test_fixes_render_one_statement_and_declare_what_they_delete(env_name):
    env = load_environment(env_name, config_dir=ROOT)
    renderer = Renderer(SQL_DIR, env)
    fix = runbooks.STEP_KINDS["fix"]
    steps = {fix.arg(s, "name"): s for b in shipped() for s in b.steps if s.do == "fix"}
    fixes = sorted((SQL_DIR / "fixes").glob("*.sql.j2"))
    assert {p.name.removesuffix(".sql.j2") for p in fixes} == set(steps)
    for path in fixes:
        from shipshape.engine import migrations, sqlparse

        change = renderer.render(path, preview=False)
        preview = renderer.render(path, preview=True)
        assert len(migrations.split(change)) == 1 and len(migrations.split(preview)) == 1
        assert re.search(r"^\s*SELECT\b", preview, re.MULTILINE)
        declared = "destructive" in directives(change)
        step = steps[path.name.removesuffix(".sql.j2")]
        assert declared == bool(fix.arg(step, "destructive")), path
        assert declared == bool(sqlparse.destructive_effects(change)), path


def test_docs_are_a_fresh_render_of_the_runbooks():
    committed = (ROOT / "docs" / "runbooks.md").read_text()
    assert committed == runbooks.render_docs(shipped(), SQL_DIR), (
        "docs/runbooks.md is stale: run `invoke runbook.docs`")
    for b in shipped():
        assert f'<a id="{b.id}"></a>' in committed and b.title in committed
    for code in findings.CODES:
        assert f"`{code}`" in committed


# --- the schema -----------------------------------------------------------------------------

def test_every_problem_is_reported_with_file_field_and_line(tmp_path):
    path = write(tmp_path, "broken", textwrap.dedent("""\
        id: Broken Book
        title: ""
        priority: high
        summary: What broke.
        symptoms: []
        detects: [NOT_A_CODE, SEED_MISSING]
        colour: red
        steps:
          - id: seed
            do: seed
            why: Seed it.
            force: true
          - id: seed
            do: fix
            why: Fix it.
          - id: drop
            do: push
            why: Push it.
          - id: base
            do: baseline
            version: latest
            why: Adopt.
        escalate: never
        """))
    with pytest.raises(ConfigError) as error:
        runbooks.load(tmp_path)
    text = str(error.value)
    assert error.value.exit_code == 5
    for expected in [
        "id: must be lower-case letters, digits and dashes, got 'Broken Book'",
        "title: must be non-empty text",
        "priority: must be an integer (lower runs first), got 'high'",
        "symptoms: must be a non-empty list of text",
        "detects[0]: unknown finding code 'NOT_A_CODE'",
        "colour: unknown field",
        "steps[0].force: not an argument of seed; its arguments: none (line 9)",
        "steps[1].id: 'seed' is used by another step (line 13)",
        "steps[1]: fix needs 'name' (line 13)",
        "steps[2].do: unknown operation 'push'; the operations are migrate, seed, baseline",
        "steps[3].version: must be a version number or auto, got 'latest' (line 19)",
        "verify: required when the runbook has steps",
        "escalate: must be a mapping with `when` (a list) and `to`",
    ]:
        assert f"{path}: {expected}" in text, expected


def test_id_must_match_the_file_and_be_unique_and_fixes_must_exist(tmp_path):
    write(tmp_path, "one", GOOD.format(id="two", priority=1, detects="SEED_MISSING", also="CHECK_ERROR"))
    with pytest.raises(ConfigError, match=r"one.yaml: id: 'two' must equal the file name \('one'\)"):
        runbooks.load(tmp_path)
    other = tmp_path / "fix"
    write(other, "fixer", textwrap.dedent("""\
        id: fixer
        title: Fixer
        priority: 1
        summary: s
        symptoms: [s]
        detects: [CHECK_FAILED check orphaned_avatars]
        steps:
          - {id: f, do: fix, name: no_such_fix, why: w}
        verify: {absent: [CHECK_FAILED]}
        escalate: {when: [w]}
        """))
    runbooks.load(other)  # without an SQL tree, the fix is checked when it is planned
    with pytest.raises(ConfigError, match=r"fixer.yaml: steps\[0\]\.name: no fix .*no_such_fix.sql.j2"):
        runbooks.load(other, sql_dir=SQL_DIR)


def test_yaml_errors_name_the_line(tmp_path):
    write(tmp_path, "dup", "id: dup\nid: again\n")
    with pytest.raises(ConfigError, match=r"dup.yaml:2: not valid YAML: found duplicate key 'id'"):
        runbooks.load(tmp_path)
    (tmp_path / "dup.yaml").write_text("id: [unclosed\n")
    with pytest.raises(ConfigError, match=r"dup.yaml:2: not valid YAML"):
        runbooks.load(tmp_path)


def test_an_empty_or_missing_directory_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="No runbooks directory"):
        runbooks.load(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="no runbook files"):
        runbooks.load(tmp_path)


def test_unknown_runbook_lists_the_known_ones(tmp_path):
    book(tmp_path, "alpha")
    with pytest.raises(ConfigError, match=r"Unknown runbook 'beta'. The runbooks are: alpha"):
        runbooks.get(runbooks.load(tmp_path), "beta")


# --- which runbook fixes which finding --------------------------------------------------

def test_findings_go_to_the_first_triggered_runbook_that_clears_them(tmp_path):
    book(tmp_path, "pending", 60, detects="MIGRATION_PENDING", also="CHECK_ERROR")
    book(tmp_path, "adopt", 50, detects="DRIFT_UNEXPECTED", also="MIGRATION_PENDING")
    book(tmp_path, "integrity", 65, detects="CHECK_FAILED check orphaned_*",
         also="DRIFT_MISSING constraint *")
    book(tmp_path, "drift", 70, detects="DRIFT_MISSING", also="APP_NOT_READY")
    books = runbooks.load(tmp_path)
    found = [finding("MIGRATION_PENDING", "migration 0006_x"), finding("CHECK_ERROR", "check a"),
             finding("DRIFT_MISSING", "constraint avatars.fk"), finding("DRIFT_MISSING", "index i"),
             finding("CONNECTIONS_NEAR_LIMIT", "database")]
    owners = [b.id if b else None for b in runbooks.assign(found, books)]
    # adopt is not triggered (no DRIFT_UNEXPECTED), integrity is not (no orphans)
    assert owners == ["pending", "pending", "drift", "drift", None]

    found.append(finding("CHECK_FAILED", "check orphaned_avatars"))
    found.append(finding("DRIFT_UNEXPECTED", "column avatars.gender"))
    owners = [b.id if b else None for b in runbooks.assign(found, books)]
    assert owners == ["adopt", "pending", "integrity", "drift", None, "integrity", "adopt"]

    groups = triage.group(found, books, command=lambda b: runbooks.command(b, "dev"))
    assert [g.runbook.id if g.runbook else None for g in groups] == [
        "adopt", "pending", "integrity", "drift", None]
    assert groups[0].command == "invoke runbook.run adopt --env dev"
    assert all(f.runbook == (g.runbook.id if g.runbook else None)
               for g in groups for f in g.findings)


def test_the_command_carries_the_options_that_matter_but_never_a_dsn():
    books = {b.id: b for b in shipped()}
    assert runbooks.command(books["models-missing"], "prod") == \
        "invoke runbook.run models-missing --env prod"
    assert runbooks.command(books["models-missing"], "dev", sql_dir="other/sql",
                            long_transaction="5s") == \
        "invoke runbook.run models-missing --env dev --sql-dir other/sql"
    assert runbooks.command(books["blocking-session"], "dev", long_transaction="5s") == \
        "invoke runbook.run blocking-session --env dev --long-transaction 5s"


def test_doctor_text_groups_findings_under_their_command():
    books = shipped()
    diagnosis = doctor.Diagnosis(
        target="postgresql://app:***@db/avatar (env prod, from DATABASE_URL)",
        findings=[finding("SEED_MISSING", "seed ai_models.yaml"),
                  Finding("CONNECTIONS_NEAR_LIMIT", "warning", "database", "90 of 100.", "look"),
                  finding("MIGRATION_PENDING", "migration 0006_avatar_generations")])
    groups = triage.group(diagnosis.findings, books,
                          command=lambda b: runbooks.command(b, "prod"))
    text = triage.render_text(diagnosis, groups)
    assert text.splitlines()[1] == ("✗ not healthy: 2 problem(s), 1 warning(s), grouped by the "
                                    "runbook that fixes them (run them in this order):")
    # the seed finding goes with the migrations (they seed after migrating)
    assert "1. migrations-not-applied: Migrations in the code are not applied" in text
    assert "   run: invoke runbook.run migrations-not-applied --env prod" in text
    assert "2. no runbook fixes these" in text and "fix: look" in text
    as_json = triage.as_json(diagnosis, groups)
    assert as_json["healthy"] is False
    assert [r["id"] for r in as_json["runbooks"]] == ["migrations-not-applied"]
    assert [f.code for f in as_json["unmatched"]] == ["CONNECTIONS_NEAR_LIMIT"]


def test_session_queries_are_scrubbed_of_passwords():
    assert doctor.scrub_query("ALTER ROLE app PASSWORD 'hunter2'") == "ALTER ROLE app PASSWORD '***'"
    assert "pw" not in doctor.scrub_query("SELECT dblink('postgresql://u:pw@h/d', 'x')")


def test_long_transaction_threshold_must_be_a_duration():
    with pytest.raises(ConfigError, match="--long-transaction 'soon'"):
        doctor._threshold("soon")


def test_a_report_is_markdown_and_json_without_secrets(tmp_path):
    from shipshape.secrets import register_secret

    register_secret("pw-in-a-message")
    step = runbooks.Step("seed", "seed", "Seed it.", {})
    planned = runbooks.PlannedStep(step, 1, sql="SELECT 1", summary="upsert", status="done",
                                   duration_ms=12, detail="done with pw-in-a-message")
    result = runbooks.RunResult(
        runbook="models-missing", title="AI models missing", env="dev",
        target="postgresql://u:***@h/d (env dev, from --dsn)", operator="alice@host",
        reason="because", started_at=datetime(2025, 10, 17, 3, 0, tzinfo=UTC),
        outcome="fixed", run_id=7, steps=[planned],
        findings_before=[finding("SEED_MISSING", "seed ai_models.yaml")])
    result.event("detect with postgresql://u:pw-in-a-message@h/d")
    runbooks.write_reports(result, tmp_path)
    assert result.report_md.name == "20251017T030000Z-models-missing-dev-run7.md"
    md, js = result.report_md.read_text(), result.report_json.read_text()
    for text in (md, js):
        assert "pw-in-a-message" not in text
        assert planned.sha256 in text
    assert "| 1 | seed | seed | done | 12 ms |" in md and "| reason | because |" in md
    runbooks.write_reports(result, tmp_path)  # same second: a second file, not over it
    assert result.report_md.name == "20251017T030000Z-models-missing-dev-run7-2.md"


def test_doctor_never_routes_to_a_manual_runbook():
    from shipshape.engine.findings import Finding
    from shipshape.ops import triage

    books = shipped()
    manual = [b for b in books if b.manual]
    assert [b.id for b in manual] == ["delete-orphans"]
    orphans = Finding("CHECK_FAILED", "error", "check orphaned_avatars", "x", "y")
    assert [b.id for b in runbooks.assign([orphans], books)] == ["data-integrity"]
    # even alone, a manual runbook gets nothing: doctor then names doctor's own fixes
    assert runbooks.assign([orphans], manual) == [None]
    route = triage.route([orphans], "dev", runbooks=books)
    assert route.command == "invoke runbook.run data-integrity --env dev"
    assert triage.route([orphans], "dev", runbooks=manual).command == "invoke doctor --env dev"
