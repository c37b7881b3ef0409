"""diff() and Difference.describe() on handmade snapshots: no database needed."""

from __future__ import annotations

import copy
import json

import pytest

from shipshape.engine.catalog import KINDS, SECTIONS, Difference, diff

FK = 'FOREIGN KEY ("projectId") REFERENCES avatar_projects(id)'


def column(table, type_="text", nullable=True, default=None, **extra):
    return {"table": table, "type": type_, "nullable": nullable, "default": default,
            "identity": None, "generated": None, "collation": None, **extra}


def table():
    return {"kind": "table", "unlogged": False, "row_security": "disabled",
            "partition_key": None, "partition_bound": None, "inherits": [], "options": []}


@pytest.fixture
def base() -> dict:
    snap = {section: {} for section in SECTIONS.values()}
    snap["tables"] = {"avatar_projects": table(), "avatars": table(), "other.audit": table()}
    snap["columns"] = {
        "avatar_projects.id": column("avatar_projects", "bigint", False,
                                     "nextval('avatar_projects_id_seq'::regclass)"),
        "avatar_projects.name": column("avatar_projects", nullable=False),
        "avatars.id": column("avatars", "uuid", False, "gen_random_uuid()"),
        "avatars.personaName": column("avatars"),
        "avatars.projectId": column("avatars", "bigint"),
        "other.audit.id": column("other.audit", "integer", False),
    }
    snap["indexes"] = {
        "avatar_projects_name_idx": {
            "table": "avatar_projects", "valid": True,
            "definition": "CREATE INDEX avatar_projects_name_idx ON public.avatar_projects "
                          "USING btree (name)"},
    }
    snap["constraints"] = {
        "avatar_projects.avatar_projects_pkey": {
            "table": "avatar_projects", "type": "PRIMARY KEY", "definition": "PRIMARY KEY (id)"},
        "avatars.avatars_projectId_fkey": {
            "table": "avatars", "type": "FOREIGN KEY",
            "definition": f"{FK} ON DELETE CASCADE"},
    }
    snap["sequences"] = {
        "avatar_projects_id_seq": {
            "type": "bigint", "start": 1, "increment": 1, "minimum": 1,
            "maximum": 9223372036854775807, "cache": 1, "cycle": False,
            "table": "avatar_projects", "column": "id"},
        "ticket_seq": {
            "type": "bigint", "start": 100, "increment": 5, "minimum": 1,
            "maximum": 9223372036854775807, "cache": 1, "cycle": False,
            "table": None, "column": None},
    }
    snap["views"] = {"ready_avatars": {"kind": "view", "options": [],
                                       "definition": " SELECT id FROM avatars;"}}
    snap["extensions"] = {"pgcrypto": {"schema": "public"}}
    snap["enums"] = {"avatar_status": {"labels": ["draft", "ready"]}}
    snap["triggers"] = {"avatar_projects.touch": {
        "table": "avatar_projects", "enabled": "enabled",
        "definition": "CREATE TRIGGER touch BEFORE UPDATE ON public.avatar_projects "
                      "FOR EACH ROW EXECUTE FUNCTION touch()"}}
    snap["grants"] = {"avatar_projects": {"app": ["SELECT", "UPDATE"]},
                      "avatar_projects_id_seq": {"app": ["USAGE"]},
                      "ready_avatars": {"app": ["SELECT"]}}
    return snap


def test_identical_snapshots_have_no_differences(base):
    assert diff(base, copy.deepcopy(base)) == []
    assert diff(base, json.loads(json.dumps(base))) == []


def test_missing_column(base):
    actual = copy.deepcopy(base)
    del actual["columns"]["avatars.personaName"]
    [d] = diff(base, actual)
    assert (d.kind, d.name, d.change) == ("column", "avatars.personaName", "missing")
    assert d.expected == base["columns"]["avatars.personaName"] and d.actual is None
    assert d.describe() == "column avatars.personaName is missing (expected text, nullable)"


def test_unexpected_index(base):
    actual = copy.deepcopy(base)
    actual["indexes"]["avatars_extra_idx"] = {
        "table": "avatars", "valid": True,
        "definition": "CREATE INDEX avatars_extra_idx ON public.avatars USING btree (id)"}
    [d] = diff(base, actual)
    assert (d.kind, d.name, d.change) == ("index", "avatars_extra_idx", "unexpected")
    assert d.expected is None and d.actual == actual["indexes"]["avatars_extra_idx"]
    assert d.describe() == ("index avatars_extra_idx is unexpected (found CREATE INDEX "
                            "avatars_extra_idx ON public.avatars USING btree (id))")


def test_changed_foreign_key_names_the_lost_on_delete(base):
    actual = copy.deepcopy(base)
    actual["constraints"]["avatars.avatars_projectId_fkey"]["definition"] = FK
    [d] = diff(base, actual)
    assert (d.kind, d.name, d.change) == ("constraint", "avatars.avatars_projectId_fkey",
                                          "changed")
    assert d.describe() == (
        f"constraint avatars.avatars_projectId_fkey changed: expected {FK} ON DELETE CASCADE, "
        f"found {FK} (no ON DELETE)")


@pytest.mark.parametrize(("change", "expected_text"), [
    ({"nullable": False}, "expected nullable, found not null"),
    ({"type": "varchar(40)"}, "expected text, found varchar(40)"),
    ({"default": "'x'::text"}, "expected no default, found default 'x'::text"),
    ({"type": "integer", "nullable": False}, "expected text nullable, found integer not null"),
])
def test_changed_column_shows_only_what_differs(base, change, expected_text):
    actual = copy.deepcopy(base)
    actual["columns"]["avatars.personaName"].update(change)
    [d] = diff(base, actual)
    assert (d.kind, d.name, d.change) == ("column", "avatars.personaName", "changed")
    assert d.describe() == f"column avatars.personaName changed: {expected_text}"


def test_missing_table_folds_its_children(base):
    """Columns, indexes, constraints, triggers, owned sequence and grants fold in."""
    actual = copy.deepcopy(base)
    del actual["tables"]["avatar_projects"]
    for section in ("columns", "indexes", "constraints", "triggers"):
        actual[section] = {k: v for k, v in actual[section].items()
                           if v["table"] != "avatar_projects"}
    del actual["sequences"]["avatar_projects_id_seq"]
    del actual["grants"]["avatar_projects"]
    del actual["grants"]["avatar_projects_id_seq"]
    # the FK from avatars went with it (DROP ... CASCADE): that is reported on its own
    del actual["constraints"]["avatars.avatars_projectId_fkey"]
    found = diff(base, actual)
    assert [(d.kind, d.name, d.change) for d in found] == [
        ("table", "avatar_projects", "missing"),
        ("constraint", "avatars.avatars_projectId_fkey", "missing"),
    ]
    assert found[0].describe() == "table avatar_projects is missing"


def test_unexpected_table_folds_its_children(base):
    actual = copy.deepcopy(base)
    actual["tables"]["extra"] = table()
    actual["columns"]["extra.id"] = column("extra", "integer", False)
    actual["constraints"]["extra.extra_pkey"] = {
        "table": "extra", "type": "PRIMARY KEY", "definition": "PRIMARY KEY (id)"}
    actual["grants"]["extra"] = {"app": ["SELECT"]}
    assert [(d.kind, d.name, d.change) for d in diff(base, actual)] == [
        ("table", "extra", "unexpected")]
    # the other direction: the extra table is missing, once
    assert [(d.kind, d.name, d.change) for d in diff(actual, base)] == [
        ("table", "extra", "missing")]


def test_missing_view_folds_its_grants(base):
    actual = copy.deepcopy(base)
    del actual["views"]["ready_avatars"]
    del actual["grants"]["ready_avatars"]
    [d] = diff(base, actual)
    assert (d.kind, d.name, d.change) == ("view", "ready_avatars", "missing")


def test_children_of_a_present_table_are_not_folded(base):
    actual = copy.deepcopy(base)
    del actual["columns"]["avatars.personaName"]
    del actual["columns"]["avatars.projectId"]
    assert [d.name for d in diff(base, actual)] == ["avatars.personaName", "avatars.projectId"]


def test_unowned_sequence_and_grants(base):
    actual = copy.deepcopy(base)
    actual["sequences"]["ticket_seq"]["increment"] = 1
    actual["grants"]["avatar_projects"] = {"app": ["SELECT"]}
    del actual["grants"]["ready_avatars"]
    found = diff(base, actual)
    assert [(d.kind, d.name, d.change) for d in found] == [
        ("sequence", "ticket_seq", "changed"),
        ("grant", "avatar_projects", "changed"),
        ("grant", "ready_avatars", "missing"),
    ]
    assert found[0].describe() == "sequence ticket_seq changed: increment expected 5, found 1"
    assert found[1].describe() == (
        "grant avatar_projects changed: app expected [SELECT, UPDATE], found [SELECT]")
    assert found[2].describe() == "grant ready_avatars is missing (expected app: SELECT)"


def test_output_is_sorted_by_kind_order_then_name(base):
    actual = copy.deepcopy(base)
    actual["grants"]["avatars"] = {"PUBLIC": ["SELECT"]}
    actual["triggers"]["avatars.b"] = {"table": "avatars", "definition": "b", "enabled": "enabled"}
    actual["triggers"]["avatars.a"] = {"table": "avatars", "definition": "a", "enabled": "enabled"}
    actual["enums"]["avatar_status"]["labels"].append("failed")
    actual["extensions"]["citext"] = {"schema": "public"}
    actual["views"]["ready_avatars"]["definition"] = " SELECT id FROM avatars WHERE true;"
    del actual["sequences"]["ticket_seq"]
    actual["constraints"]["avatars.avatars_projectId_fkey"]["definition"] = FK
    actual["indexes"]["avatar_projects_name_idx"]["valid"] = False
    actual["columns"]["avatars.zzz"] = column("avatars")
    actual["columns"]["avatars.aaa"] = column("avatars")
    actual["tables"]["avatars"]["row_security"] = "enabled"
    found = diff(base, actual)
    assert [(d.kind, d.name) for d in found] == [
        ("table", "avatars"),
        ("column", "avatars.aaa"), ("column", "avatars.zzz"),
        ("index", "avatar_projects_name_idx"),
        ("constraint", "avatars.avatars_projectId_fkey"),
        ("sequence", "ticket_seq"),
        ("view", "ready_avatars"),
        ("extension", "citext"),
        ("enum", "avatar_status"),
        ("trigger", "avatars.a"), ("trigger", "avatars.b"),
        ("grant", "avatars"),
    ]
    assert [d.kind for d in found] == sorted((d.kind for d in found), key=KINDS.index)
    text = {d.kind + " " + d.name: d.describe() for d in found}
    assert text["table avatars"] == (
        "table avatars changed: row_security expected disabled, found enabled")
    assert text["index avatar_projects_name_idx"] == (
        "index avatar_projects_name_idx changed: valid expected true, found false")
    assert text["extension citext"] == "extension citext is unexpected (found in schema public)"
    assert text["enum avatar_status"] == (
        "enum avatar_status changed: labels expected [draft, ready], "
        "found [draft, ready, failed]")
    assert text["view ready_avatars"] == (
        "view ready_avatars changed: expected SELECT id FROM avatars;, "
        "found SELECT id FROM avatars WHERE true;")
    assert text["sequence ticket_seq"] == (
        "sequence ticket_seq is missing (expected bigint, start 100, increment 5)")


def test_long_definitions_are_shown_around_the_first_difference():
    body = "SELECT " + ", ".join(f"col{i}" for i in range(200))
    expected = {"kind": "view", "definition": body + " FROM a;", "options": []}
    actual = {"kind": "view", "definition": body + " FROM b;", "options": []}
    [d] = diff({"views": {"v": expected}}, {"views": {"v": actual}})
    line = d.describe()
    assert "\n" not in line and len(line) < 700
    assert "FROM a;" in line and "FROM b;" in line


def test_missing_sections_count_as_empty():
    found = diff({"tables": {"t": table()}}, {})
    assert [(d.kind, d.name, d.change) for d in found] == [("table", "t", "missing")]


def test_difference_is_frozen_and_compares_by_value():
    d = Difference("column", "t.c", "missing", expected={"type": "text"})
    with pytest.raises(AttributeError):
        d.kind = "table"  # type: ignore[misc]
    assert d == Difference("column", "t.c", "missing", {"type": "text"}, None)
