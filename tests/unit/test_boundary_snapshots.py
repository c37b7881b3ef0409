"""engine.boundary on snapshots: what is declared outside the migrations' ownership is
left out of the comparison, everything else stays a difference."""

from __future__ import annotations

from shipshape.engine import boundary
from shipshape.engine.boundary import Boundary
from shipshape.settings import Environment, load_environment


def snap(**sections) -> dict:
    base = {s: {} for s in ("tables", "columns", "indexes", "constraints", "sequences", "views",
                            "extensions", "enums", "functions", "triggers", "grants")}
    base.update(sections)
    return base


EXPECTED = snap(
    tables={"avatars": {"kind": "table"}},
    columns={"avatars.id": {"table": "avatars", "type": "uuid"}},
    grants={"avatars": {"avatar_app": ["SELECT"]}},
)

LIVE = snap(
    tables={"avatars": {"kind": "table"}, "dba_notes": {"kind": "table"},
            "reporting.daily": {"kind": "table"}, "_prisma_migrations": {"kind": "table"}},
    columns={"avatars.id": {"table": "avatars", "type": "uuid"},
             "dba_notes.id": {"table": "dba_notes", "type": "integer"}},
    indexes={"dba_notes_idx": {"table": "dba_notes", "definition": "x"}},
    views={"v_report": {"kind": "view", "definition": "SELECT 1"}},
    extensions={"pg_stat_statements": {"schema": "public"}},
    functions={"reporting.refresh()": {"kind": "function", "definition": "x"}},
    grants={"avatars": {"avatar_app": ["SELECT"], "reporting_ro": ["SELECT"]},
            "v_report": {"reporting_ro": ["SELECT"]}},
)

DECLARED = Boundary(extensions=("pg_stat_statements",), schemas=("reporting",),
                    relations=("v_report*", "dba_*"), roles=("reporting_*",),
                    foreign=("_prisma_migrations",))


def names(differences) -> set[str]:
    return {f"{d.change} {d.kind} {d.name}" for d in differences}


def test_undeclared_objects_are_all_differences():
    drift, ignored = boundary.split(EXPECTED, LIVE, Boundary())
    assert ignored == []
    assert names(drift) == {
        "unexpected table dba_notes", "unexpected table reporting.daily",
        "unexpected table _prisma_migrations", "unexpected view v_report",
        "unexpected extension pg_stat_statements", "unexpected function reporting.refresh()",
        "changed grant avatars"}


def test_declared_objects_are_ignored_and_listed_apart():
    drift, ignored = boundary.split(EXPECTED, LIVE, DECLARED)
    assert drift == []
    assert names(ignored) == names(boundary.split(EXPECTED, LIVE, Boundary())[0])
    shown = boundary.describe_ignored(ignored)
    assert {e["status"] for e in shown} == {"ignored (declared)"}
    assert {"object": "view v_report", "status": "ignored (declared)",
            "message": "view v_report is unexpected."} in shown


def test_each_declaration_covers_only_its_own_objects():
    only_roles = Boundary(roles=("reporting_ro",))
    drift, ignored = boundary.split(EXPECTED, LIVE, only_roles)
    assert names(ignored) == {"changed grant avatars"}
    assert "unexpected view v_report" in names(drift)  # its grant goes with the view
    # a glob that matches no name declares nothing
    assert boundary.split(EXPECTED, LIVE, Boundary(relations=("v_reports",)))[1] == []


def test_a_missing_object_the_migrations_create_is_still_drift_when_nothing_declares_it():
    live = {**LIVE, "columns": {"dba_notes.id": LIVE["columns"]["dba_notes.id"]}}
    drift, _ = boundary.split(EXPECTED, live, DECLARED)
    assert names(drift) == {"missing column avatars.id"}


def test_a_foreign_table_a_migration_creates_is_compared_as_usual():
    expected = snap(tables={"_prisma_migrations": {"kind": "table"}},
                    columns={"_prisma_migrations.id": {"table": "_prisma_migrations",
                                                       "type": "text"}})
    live = snap(tables={"_prisma_migrations": {"kind": "table"}})
    drift, ignored = boundary.split(expected, live, Boundary(foreign=("_prisma_migrations",)))
    assert names(drift) == {"missing column _prisma_migrations.id"} and ignored == []


def test_only_roles_the_migrations_grant_to_may_lose_a_grant():
    env = Environment(name="local", app_role="avatar_app")
    assert boundary.mentioned_roles(LIVE, env) == {"avatar_app", "reporting_ro", "PUBLIC"}
    assert "reporting_ro" not in boundary.mentioned_roles(EXPECTED, env)


def test_the_stack_file_and_environment_declare_the_boundary(tmp_path):
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n"
        "  shipshape:unmanaged_extensions: [pg_stat_statements]\n"
        "  shipshape:unmanaged_relations: ['v_report*']\n")
    env = load_environment("dev", config_dir=tmp_path,
                           environ={"SHIPSHAPE_UNMANAGED_ROLES": "reporting_ro, metabase"})
    declared = boundary.of(env)
    assert declared == Boundary(extensions=("pg_stat_statements",), relations=("v_report*",),
                                roles=("reporting_ro", "metabase"))
    assert not boundary.of(load_environment("dev", config_dir=tmp_path / "none", environ={}))
