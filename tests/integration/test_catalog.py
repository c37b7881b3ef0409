"""snapshot() against real PostgreSQL: the same DDL gives the same snapshot, and each kind
of drift is reported as exactly one Difference: on the system PostgreSQL and on the
embedded 18 (the `server` fixture), whose catalogs differ (NOT NULL constraints, ...).

Two databases get the same schema once per module; each drift is then made inside a
transaction on the second one, snapshotted inside that transaction and rolled back (DDL is
transactional in PostgreSQL), which keeps the module fast.
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from psycopg import sql

from shipshape.db import query
from shipshape.engine.catalog import SECTIONS, Difference, diff, snapshot
from tests.conftest import create_database, drop_database, dsn_for

ROLE = f"ss_catalog_{uuid.uuid4().hex[:8]}"

SCHEMA = """
CREATE TYPE avatar_status AS ENUM ('draft', 'ready', 'failed');
CREATE SEQUENCE ticket_seq START 100 INCREMENT 5;

CREATE TABLE avatar_projects (
    id          bigserial PRIMARY KEY,
    "userId"    text NOT NULL,
    name        text NOT NULL CONSTRAINT avatar_projects_name_check CHECK (length(name) > 0),
    "createdAt" timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE avatars (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    "userId"      text NOT NULL,
    "projectId"   bigint REFERENCES avatar_projects (id) ON DELETE CASCADE,
    status        avatar_status NOT NULL DEFAULT 'draft',
    "personaName" text,
    "personaAge"  integer,
    "usageCount"  integer NOT NULL DEFAULT 0,
    "updatedAt"   timestamptz NOT NULL DEFAULT now(),
    UNIQUE ("userId", "personaName")
);
CREATE INDEX "avatars_userId_idx" ON avatars ("userId");
CREATE INDEX avatars_ready_idx ON avatars ("projectId") WHERE status = 'ready';

CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW."updatedAt" := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER avatars_touch BEFORE UPDATE ON avatars
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

CREATE VIEW ready_avatars AS SELECT id, "userId" FROM avatars WHERE status = 'ready';

CREATE SCHEMA other;
CREATE TABLE other.audit (
    id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    note text COLLATE "C"
);

GRANT SELECT, INSERT ON avatars TO {role};
GRANT SELECT ON ready_avatars TO {role};
"""


def build(dsn: str, role: str = ROLE) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(SCHEMA.format(role=role))


def snap(dsn: str, drift: str | None = None, **kwargs) -> dict:
    """The snapshot of ``dsn``, after ``drift`` inside a transaction that is rolled back."""
    with psycopg.connect(dsn) as conn:
        if drift:
            conn.execute(drift)
        try:
            return snapshot(conn, **kwargs)
        finally:
            conn.rollback()


@pytest.fixture(scope="module")
def pair(server):
    """Two databases built from the same SQL: (expected snapshot, dsn of the second), on
    each test server in turn (the system PostgreSQL and the embedded 18)."""
    admin_dsn = server.admin_dsn
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(ROLE)))
    names = [create_database(admin_dsn), create_database(admin_dsn)]
    try:
        first, second = (dsn_for(admin_dsn, name) for name in names)
        build(first)
        build(second)
        yield snap(first), second
    finally:
        for name in names:
            drop_database(admin_dsn, name)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


def test_same_sql_gives_the_same_snapshot(pair):
    expected, second = pair
    actual = snap(second)
    assert diff(expected, actual) == []
    assert actual == expected
    assert json.loads(json.dumps(actual)) == actual
    assert list(actual) == list(SECTIONS.values())
    for section in actual.values():
        assert list(section) == sorted(section)


def test_snapshot_covers_every_kind(pair):
    expected, _ = pair
    assert "avatars" in expected["tables"] and "other.audit" in expected["tables"]
    assert expected["columns"]["avatars.personaName"] == {
        "table": "avatars", "type": "text", "nullable": True, "default": None,
        "identity": None, "generated": None, "collation": None}
    assert expected["columns"]["other.audit.id"]["identity"] == "always"
    assert expected["columns"]["other.audit.note"]["collation"] == "C"
    assert expected["indexes"]["avatars_userId_idx"] == {
        "table": "avatars", "valid": True,
        "definition": 'CREATE INDEX "avatars_userId_idx" ON public.avatars USING btree ("userId")'}
    # indexes behind PRIMARY KEY / UNIQUE are compared as constraints, not twice
    assert "avatars_pkey" not in expected["indexes"]
    assert expected["constraints"]["avatars.avatars_projectId_fkey"] == {
        "table": "avatars", "type": "FOREIGN KEY",
        "definition": 'FOREIGN KEY ("projectId") REFERENCES avatar_projects(id) '
                      "ON DELETE CASCADE"}
    assert expected["constraints"]["other.audit.audit_pkey"]["type"] == "PRIMARY KEY"
    assert not any(c["type"] == "n" for c in expected["constraints"].values())
    assert expected["sequences"]["ticket_seq"]["increment"] == 5
    assert expected["sequences"]["avatar_projects_id_seq"]["table"] == "avatar_projects"
    assert expected["sequences"]["other.audit_id_seq"]["column"] == "id"
    assert "ready_avatars" in expected["views"]
    assert expected["enums"] == {"avatar_status": {"labels": ["draft", "ready", "failed"]}}
    assert expected["functions"]["touch_updated_at()"]["kind"] == "function"
    assert expected["triggers"]["avatars.avatars_touch"]["enabled"] == "enabled"
    assert expected["grants"] == {"avatars": {ROLE: ["INSERT", "SELECT"]},
                                  "ready_avatars": {ROLE: ["SELECT"]}}
    # no owner, no OIDs anywhere
    text = json.dumps(expected)
    assert "postgres" not in text and "oid" not in text.lower()


DRIFTS = [
    pytest.param('ALTER TABLE avatars DROP COLUMN "personaAge"',
                 ("column", "avatars.personaAge", "missing"), id="drop-column"),
    pytest.param("ALTER TABLE other.audit ADD COLUMN extra integer",
                 ("column", "other.audit.extra", "unexpected"), id="add-column-other-schema"),
    pytest.param('ALTER TABLE avatars ALTER COLUMN "usageCount" SET DEFAULT 1',
                 ("column", "avatars.usageCount", "changed"), id="column-default"),
    pytest.param('ALTER TABLE avatars ALTER COLUMN "personaName" SET NOT NULL',
                 ("column", "avatars.personaName", "changed"), id="column-nullability"),
    pytest.param('ALTER TABLE avatars ALTER COLUMN "usageCount" TYPE bigint',
                 ("column", "avatars.usageCount", "changed"), id="column-type"),
    pytest.param("CREATE INDEX avatars_extra_idx ON avatars (status)",
                 ("index", "avatars_extra_idx", "unexpected"), id="unexpected-index"),
    pytest.param("DROP INDEX avatars_ready_idx",
                 ("index", "avatars_ready_idx", "missing"), id="missing-index"),
    pytest.param('ALTER TABLE avatars DROP CONSTRAINT "avatars_projectId_fkey", '
                 'ADD CONSTRAINT "avatars_projectId_fkey" FOREIGN KEY ("projectId") '
                 "REFERENCES avatar_projects (id)",
                 ("constraint", "avatars.avatars_projectId_fkey", "changed"), id="fk-on-delete"),
    pytest.param('ALTER TABLE avatars DROP CONSTRAINT "avatars_userId_personaName_key"',
                 ("constraint", "avatars.avatars_userId_personaName_key", "missing"),
                 id="drop-unique"),
    pytest.param("ALTER SEQUENCE ticket_seq INCREMENT 1",
                 ("sequence", "ticket_seq", "changed"), id="sequence-increment"),
    pytest.param("DROP VIEW ready_avatars",  # its grant folds into it
                 ("view", "ready_avatars", "missing"), id="drop-view"),
    pytest.param("CREATE OR REPLACE VIEW ready_avatars AS "
                 "SELECT id, \"userId\" FROM avatars WHERE status <> 'failed'",
                 ("view", "ready_avatars", "changed"), id="change-view"),
    pytest.param("ALTER TYPE avatar_status ADD VALUE 'archived'",
                 ("enum", "avatar_status", "changed"), id="enum-label"),
    pytest.param("CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger "
                 "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
                 ("function", "touch_updated_at()", "changed"), id="function-body"),
    pytest.param("CREATE TRIGGER avatars_touch_again BEFORE INSERT ON avatars "
                 "FOR EACH ROW EXECUTE FUNCTION touch_updated_at()",
                 ("trigger", "avatars.avatars_touch_again", "unexpected"), id="add-trigger"),
    pytest.param("ALTER TABLE avatars DISABLE TRIGGER avatars_touch",
                 ("trigger", "avatars.avatars_touch", "changed"), id="disable-trigger"),
    pytest.param(f"REVOKE INSERT ON avatars FROM {ROLE}",
                 ("grant", "avatars", "changed"), id="revoke-one-grant"),
    pytest.param(f"REVOKE ALL ON ready_avatars FROM {ROLE}",
                 ("grant", "ready_avatars", "missing"), id="revoke-all-grants"),
    pytest.param("ALTER TABLE avatars ENABLE ROW LEVEL SECURITY",
                 ("table", "avatars", "changed"), id="row-security"),
    pytest.param("CREATE TABLE extra (id integer PRIMARY KEY, note text)",
                 ("table", "extra", "unexpected"), id="unexpected-table"),
]


@pytest.mark.parametrize(("drift", "expected_difference"), DRIFTS)
def test_each_drift_is_exactly_one_difference(pair, drift, expected_difference):
    expected, second = pair
    found = diff(expected, snap(second, drift))
    assert [(d.kind, d.name, d.change) for d in found] == [expected_difference]
    assert "\n" not in found[0].describe()


def test_dropped_table_is_reported_once(pair):
    """Its columns, PK, index, owned sequence fold in; the FK from avatars is its own line."""
    expected, second = pair
    found = diff(expected, snap(second, "DROP TABLE avatar_projects CASCADE"))
    assert [(d.kind, d.name, d.change) for d in found] == [
        ("table", "avatar_projects", "missing"),
        ("constraint", "avatars.avatars_projectId_fkey", "missing"),
    ]


def test_describe_lines_for_common_drifts(pair):
    expected, second = pair
    drift = ('ALTER TABLE avatars DROP COLUMN "personaName" CASCADE, '
             'DROP CONSTRAINT "avatars_projectId_fkey", '
             'ADD CONSTRAINT "avatars_projectId_fkey" FOREIGN KEY ("projectId") '
             "REFERENCES avatar_projects (id), "
             'ALTER COLUMN "usageCount" DROP NOT NULL')
    lines = [d.describe() for d in diff(expected, snap(second, drift))]
    fk = 'FOREIGN KEY ("projectId") REFERENCES avatar_projects(id)'
    assert lines == [
        "column avatars.personaName is missing (expected text, nullable)",
        "column avatars.usageCount changed: expected not null, found nullable",
        (f"constraint avatars.avatars_projectId_fkey changed: "
         f"expected {fk} ON DELETE CASCADE, found {fk} (no ON DELETE)"),
        ('constraint avatars.avatars_userId_personaName_key is missing '
         '(expected UNIQUE ("userId", "personaName"))'),
    ]


def test_extension_in_one_database_only(pair):
    """One difference: the extension, not the functions and types it brings."""
    expected, second = pair
    with psycopg.connect(second) as conn:
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'citext'").fetchone()
    if not available:
        pytest.skip("citext (contrib) is not installed on this server")
    found = diff(expected, snap(second, "CREATE EXTENSION citext"))
    assert found == [Difference("extension", "citext", "unexpected", actual={"schema": "public"})]


def test_shipshape_schema_is_ignored(pair):
    expected, second = pair
    drift = query("bootstrap") + "; INSERT INTO shipshape.history VALUES " \
        "(1, 'x', 'c', 's', now(), 0, 'me', true)"
    assert diff(expected, snap(second, drift)) == []
    own = snap(second, drift, schemas=["shipshape"])
    assert {"shipshape.history", "shipshape.deployments"} <= own["tables"].keys()
    assert "shipshape.deployments_id_seq" in own["sequences"]
    assert "avatars" not in own["tables"]


def test_schemas_narrow_the_scope(pair):
    expected, second = pair
    other = snap(second, schemas=["other"])
    assert list(other["tables"]) == ["other.audit"]
    assert all(name.startswith("other.") for section in other.values() for name in section)
    public = snap(second, schemas=["public"])
    assert "other.audit" not in public["tables"] and "avatars" in public["tables"]
    assert public["grants"] == expected["grants"]


def test_snapshot_leaves_the_connection_as_it_found_it(pair):
    _, second = pair
    with psycopg.connect(second, autocommit=True) as conn:
        before = conn.execute("SHOW search_path").fetchone()[0]
        snapshot(conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SHOW search_path").fetchone()[0] == before
    with psycopg.connect(second) as conn:
        conn.execute("SET search_path = other, public")
        conn.commit()
        snapshot(conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        # inside the caller's transaction: a savepoint, rolled back; the transaction lives on
        conn.execute("CREATE TABLE public.pending (id integer)")
        assert "pending" in snapshot(conn)["tables"]
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert conn.execute("SHOW search_path").fetchone()[0] == "other, public"
        assert conn.execute("SELECT to_regclass('public.pending')").fetchone()[0] is not None
        conn.rollback()


def test_grants_and_not_null_read_alike_on_every_server(pair):
    expected, _ = pair
    assert expected["grants"]["avatars"] == {ROLE: ["INSERT", "SELECT"]}
    # PostgreSQL 18 keeps NOT NULL constraints in pg_constraint, 15 does not: both are
    # compared as a column's nullability, never as a constraint
    assert not any(c["type"] == "n" for c in expected["constraints"].values())
    assert expected["columns"]["avatars.usageCount"]["nullable"] is False


class CountingCursor(psycopg.Cursor):
    executed = 0

    def execute(self, *args, **kwargs):
        CountingCursor.executed += 1
        return super().execute(*args, **kwargs)


def test_five_hundred_tables_take_one_query_per_kind(fresh_dsn):
    # integer columns only: no TOAST tables or sequences, so the DDL itself stays quick
    ddl = ["CREATE TABLE t0 (id bigserial PRIMARY KEY, name text NOT NULL);"]
    for i in range(1, 500):
        ddl.append(
            f"CREATE TABLE t{i} (id integer PRIMARY KEY, "
            f"parent integer REFERENCES t{i - 1} (id) ON DELETE CASCADE, "
            f"n integer NOT NULL DEFAULT {i}, created timestamptz NOT NULL DEFAULT now(), "
            f"CHECK (n >= 0));"
            f"CREATE INDEX t{i}_parent_idx ON t{i} (parent);")
    ddl.append("CREATE VIEW v AS SELECT id FROM t499;")
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("\n".join(ddl))
    with psycopg.connect(fresh_dsn, cursor_factory=CountingCursor) as conn:
        CountingCursor.executed = 0
        result = snapshot(conn)
        # one query per kind, plus SET TRANSACTION and the search_path
        assert CountingCursor.executed <= len(SECTIONS) + 2
    assert len(result["tables"]) == 500
    assert len(result["columns"]) == 2 + 499 * 4
    assert len(result["indexes"]) == 499
    assert len(result["constraints"]) == 500 + 499 * 2
    assert list(result["sequences"]) == ["t0_id_seq"]
    assert list(result["views"]) == ["v"]
    assert json.loads(json.dumps(result)) == result
