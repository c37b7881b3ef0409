"""The shadow changes nothing outside its own scratch database (issue 10).

A migration's cluster-wide statements (roles, role settings, comments on roles, role
memberships) used to run again, committed, whenever a cold verify built the shadow on
the target's server: a login a DBA had disabled came back. Now the shadow runs in one
transaction that is rolled back, and these tests compare the cluster before and after.
"""

from __future__ import annotations

import shutil
import uuid

import psycopg
import pytest
from psycopg import sql

from shipshape import commands
from shipshape.adapters import embedded
from shipshape.engine import migrations, shadow
from shipshape.errors import Busy
from shipshape.ops import doctor, pipeline
from shipshape.progress import Progress
from tests.conftest import create_database, dsn_for
from tests.treeutil import write_migration

# Every catalog shared by the whole cluster, with the columns that only the server's own
# housekeeping moves (freezing horizons) left out.
CLUSTER_CATALOGS = {
    "pg_authid": "SELECT * FROM pg_authid ORDER BY rolname",
    "pg_auth_members": "SELECT roleid::regrole::text, member::regrole::text, grantor::regrole::text,"
                       " admin_option, inherit_option, set_option FROM pg_auth_members ORDER BY 1, 2",
    "pg_database": "SELECT datname, datdba, encoding, datistemplate, datallowconn, "
                   "datconnlimit, dattablespace, datacl FROM pg_database ORDER BY datname",
    "pg_db_role_setting": "SELECT setdatabase, setrole::regrole::text, setconfig "
                          "FROM pg_db_role_setting ORDER BY 1, 2",
    "pg_tablespace": "SELECT * FROM pg_tablespace ORDER BY spcname",
    "pg_shdescription": "SELECT * FROM pg_shdescription ORDER BY objoid, classoid",
    "pg_shseclabel": "SELECT * FROM pg_shseclabel ORDER BY objoid",
    "pg_shdepend": "SELECT * FROM pg_shdepend ORDER BY 1, 2, 3, 4, 5, 6",
    "pg_parameter_acl": "SELECT * FROM pg_parameter_acl ORDER BY parname",
    "pg_subscription": "SELECT subname FROM pg_subscription ORDER BY subname",
    "pg_replication_origin": "SELECT * FROM pg_replication_origin ORDER BY roname",
}


def cluster(admin_dsn: str) -> dict:
    with psycopg.connect(admin_dsn) as conn:
        return {name: conn.execute(query).fetchall() for name, query in CLUSTER_CATALOGS.items()}


def role_tree(root, role: str):
    """A deployed tree whose migrations touch cluster-wide state, as real ones do: a login,
    a role setting, a comment on the role, a membership; and a non-transactional one."""
    ident = f'"{role}"'
    write_migration(root, "0001_app_role",
                    f"ALTER ROLE {ident} LOGIN;\n"
                    f"ALTER ROLE {ident} SET work_mem = '64MB';\n"
                    f"COMMENT ON ROLE {ident} IS 'the app''s login';\n"
                    f"GRANT pg_read_all_data TO {ident};\n"
                    "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\n",
                    "-- shipshape:destructive\nDROP TABLE items;\n")
    write_migration(root, "0002_items_name",
                    "-- shipshape:no-transaction\n"
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_name ON items (name);\n",
                    "-- shipshape:no-transaction\nDROP INDEX CONCURRENTLY items_name;\n")
    return root


def dba_locks_down(admin_dsn: str, role: str) -> None:
    """What a DBA does after the deploy: no login, no setting, no comment, no grant."""
    ident = sql.Identifier(role)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident))
        conn.execute(sql.SQL("ALTER ROLE {} RESET ALL").format(ident))
        conn.execute(sql.SQL("COMMENT ON ROLE {} IS NULL").format(ident))
        conn.execute(sql.SQL("REVOKE pg_read_all_data FROM {}").format(ident))


@pytest.fixture
def role(admin_dsn):
    name = f"ss_shadow_role_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def can_login(admin_dsn: str, role: str) -> bool:
    with psycopg.connect(admin_dsn) as conn:
        return conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s",
                            [role]).fetchone()[0]


def test_a_cold_verify_and_doctor_leave_a_login_the_dba_disabled_disabled(
        tmp_path, admin_dsn, fresh_dsn, role, make_target, cache_dir):
    tree = role_tree(tmp_path / "sql", role)
    target = make_target(fresh_dsn, "dev")
    pipeline.deploy(target, tree)
    assert can_login(admin_dsn, role)  # the migration did enable it
    dba_locks_down(admin_dsn, role)

    shutil.rmtree(cache_dir / "cache")  # cold: the shadow is built
    commands.verify(target, tree)
    assert not can_login(admin_dsn, role)

    shutil.rmtree(cache_dir / "cache")
    doctor.diagnose(target, tree)
    assert not can_login(admin_dsn, role)
    assert list((cache_dir / "cache").glob("shadow-*.json")), "the shadow was built"


def test_a_cold_verify_changes_no_cluster_wide_catalog(tmp_path, make_target, monkeypatch):
    """On a server of its own, so that nothing else running on the shared server moves
    a catalog: every shared catalog is equal before and after a cold verify."""
    monkeypatch.setenv("SHIPSHAPE_STATE_DIR", str(tmp_path / "state"))
    with embedded.scratch_server() as admin:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute('CREATE ROLE "app_login" NOLOGIN')
        database = create_database(admin)
        target = make_target(dsn_for(admin, database), "dev")
        tree = role_tree(tmp_path / "sql", "app_login")
        pipeline.deploy(target, tree)
        dba_locks_down(admin, "app_login")
        shutil.rmtree(tmp_path / "state" / "cache")
        before = cluster(admin)

        commands.verify(target, tree)

        after = cluster(admin)
        assert list((tmp_path / "state" / "cache").glob("shadow-*.json"))
        assert {k: v for k, v in after.items() if before[k] != v} == {}


def test_a_non_transactional_migration_is_built_without_concurrently(tmp_path, fresh_dsn,
                                                                    make_target, cache_dir):
    tree = role_tree(tmp_path / "sql", "postgres")
    loaded = migrations.load(tree, make_target(fresh_dsn, "dev").env)
    assert not loaded[1].transactional
    assert shadow.without_concurrently(loaded[1].sql) == [
        "CREATE INDEX IF NOT EXISTS items_name ON items (name)"]
    snapshot = shadow.shadow_snapshot(make_target(fresh_dsn, "dev"), loaded)
    assert "items_name" in str(snapshot)


def test_statements_without_concurrently_keep_their_own_text(tmp_path):
    script = ("-- a comment\nDROP INDEX CONCURRENTLY IF EXISTS a;\n"
              "REINDEX (VERBOSE, CONCURRENTLY) INDEX b;\n"
              "REFRESH MATERIALIZED VIEW CONCURRENTLY mv;\n"
              "ALTER TABLE t DETACH PARTITION p CONCURRENTLY;\n"
              "SELECT 'CONCURRENTLY' AS kept")
    found = shadow.without_concurrently(script)
    assert "CONCURRENTLY" not in " ".join(found[:4]).upper()
    assert found[4] == "SELECT 'CONCURRENTLY' AS kept"
    assert "VERBOSE" in found[1].upper()


def test_a_tree_that_cannot_run_in_one_transaction_is_built_on_a_scratch_server(
        tmp_path, admin_dsn, fresh_dsn, make_target, cache_dir):
    """An enum value used by the migration after the one that adds it: refused inside one
    transaction, so the shadow goes to an embedded server, and says so; the snapshot
    has what every migration made."""
    root = tmp_path / "sql"
    write_migration(root, "0001_mood", "CREATE TYPE mood AS ENUM ('sad');\n",
                    "-- shipshape:destructive\nDROP TYPE mood;\n")
    write_migration(root, "0002_happy", "ALTER TYPE mood ADD VALUE 'happy';\n",
                    "SELECT 1;\n")
    write_migration(root, "0003_people",
                    "CREATE TABLE people (feels mood NOT NULL DEFAULT 'happy');\n",
                    "-- shipshape:destructive\nDROP TABLE people;\n")
    target = make_target(fresh_dsn, "dev")
    loaded = migrations.load(root, target.env)
    notes = []

    class Notes(Progress):
        def info(self, message):
            notes.append(message)

    snapshot = shadow.shadow_snapshot(target, loaded, Notes())
    assert "people" in str(snapshot) and "happy" in str(snapshot)
    assert any("0003_people cannot run inside a transaction" in n for n in notes), notes


def test_a_shadow_that_waits_on_the_live_cluster_gives_up_after_lock_timeout(
        tmp_path, admin_dsn, fresh_dsn, role, make_target, cache_dir):
    """A DBA's open transaction on the app's role: the shadow's ALTER ROLE waits for it.
    Without the env's timeouts a read-only verify waited for ever; now it is busy (exit 4)
    after lock_timeout, names the migration and the command, and changes nothing."""
    tree = role_tree(tmp_path / "sql", role)
    target = make_target(fresh_dsn, "dev", lock_timeout="300ms")
    pipeline.deploy(target, tree)
    shutil.rmtree(cache_dir / "cache")
    with psycopg.connect(admin_dsn) as dba:
        dba.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))  # open
        with pytest.raises(Busy) as busy:
            commands.verify(target, tree)
        dba.rollback()
    assert busy.value.exit_code == 4
    assert "Building the shadow of 0001_app_role" in str(busy.value)
    assert "lock_timeout (300ms)" in str(busy.value)
    assert "invoke doctor --env dev" in str(busy.value)
    assert can_login(admin_dsn, role)  # the DBA's change rolled back; the shadow's too
    assert not list((cache_dir / "cache").glob("shadow-*.json"))
