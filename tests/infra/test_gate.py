"""The migration gate's logic against real PostgreSQL, without Pulumi: shipshape.pulumi_gate.gate, and
the dynamic provider's create/update/diff that call it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import psycopg
import pytest
from psycopg import sql

from shipshape.errors import ProblemsFound, Refused
from shipshape.pulumi_gate import gate
from shipshape.settings import with_settings
from tests.conftest import create_database, drop_database, dsn_for
from tests.treeutil import write_migration

APP_PASSWORD = "gate-test-Pa55-4e1f09"
ALL_MIGRATIONS = ["0001_users", "0002_ai_models", "0003_avatar_projects", "0004_avatars",
                  "0005_avatar_persona_columns", "0006_avatar_generations", "0007_avatar_presets",
                  "0008_persona_examples", "0009_avatar_usage_history",
                  "0010_performance_indexes", "0011_api_tokens",
                  "0012_app_instances"]


def _drop_role(admin_dsn, role):
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def shared_role(admin_dsn, tmp_path_factory):
    """An app role for this module's tests, and one shadow-snapshot cache for them (the
    role's name is in the rendered SQL, so sharing it lets verify reuse its shadow).
    Roles are cluster-wide: a role of our own, never a shared avatar_app that another
    database may already have given LOGIN. Dropped after every database that used it."""
    role = f"ss_app_{uuid.uuid4().hex[:10]}"
    state = tmp_path_factory.mktemp("gate-state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHIPSHAPE_STATE_DIR", str(state))
        yield role
    _drop_role(admin_dsn, role)


@pytest.fixture
def db(admin_dsn, shared_role):
    name = create_database(admin_dsn)
    yield dsn_for(admin_dsn, name), shared_role
    drop_database(admin_dsn, name)


@pytest.fixture
def target(db, make_target):
    dsn, role = db
    return make_target(dsn, "dev", app_role=role)


@pytest.fixture
def own_target(admin_dsn, make_target, cache_dir):
    """A database with an app role nobody else has used (for LOGIN-state assertions)."""
    name = create_database(admin_dsn)
    role = f"ss_app_{uuid.uuid4().hex[:10]}"
    yield make_target(dsn_for(admin_dsn, name), "dev", app_role=role)
    drop_database(admin_dsn, name)
    _drop_role(admin_dsn, role)


def fetch(dsn, query, params=None):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def as_app(target, **kw):
    """Connect as the app role (the server trusts 127.0.0.1, so this tests LOGIN, not the password)."""
    return psycopg.connect(target.dsn, user=target.env.app_role, password=APP_PASSWORD, **kw)


def props_for(target, sql_dir) -> dict:
    """The dynamic resource's properties, as infra/components/gate.py builds them."""
    settings = target.env.context()
    settings.pop("name")
    return {"env": target.env.name, "settings": settings, "sql_dir": str(sql_dir),
            "checksums": gate.checksums(target.env, sql_dir), "database_id": "db-container-1",
            "admin_dsn": target.dsn, "app_role": target.env.app_role, "app_password": APP_PASSWORD}


def outputs_of(props, result):
    """What the provider hands back to Pulumi: the state the next run is diffed against."""
    return gate.provider_outputs(props, result)


def test_first_run_migrates_seeds_verifies_then_lets_the_app_role_log_in(own_target, sql_tree):
    target = own_target
    with pytest.raises(psycopg.OperationalError):  # no such role yet
        as_app(target).close()
    result = gate.run(target, sql_tree, app_password=APP_PASSWORD)
    assert result.applied == ALL_MIGRATIONS
    assert result.schema_version == 12
    assert result.gates["verify"].startswith("ok")
    assert result.gates["app"].startswith("skipped")  # the app starts after the gate
    assert fetch(target.dsn, "SELECT count(*) FROM ai_models")[0][0] > 0
    assert fetch(target.dsn, "SELECT result FROM shipshape.deployments") == [("ok",)]
    with as_app(target) as conn:
        assert conn.execute("SELECT max(version) FROM shipshape.history WHERE success").fetchone() == (12,)


def test_unchanged_second_run_does_nothing(target, sql_tree):
    first = outputs_of(props_for(target, sql_tree), gate.run(target, sql_tree, app_password=APP_PASSWORD))
    rows = "SELECT xmin::text, * FROM ai_models ORDER BY 2"
    history = "SELECT version, checksum, applied_at FROM shipshape.history ORDER BY version"
    before = fetch(target.dsn, rows), fetch(target.dsn, history)

    again = props_for(target, sql_tree)
    assert gate.provider_diff(first, again) == []  # Pulumi would not even call update
    second = gate.run(target, sql_tree, app_password=APP_PASSWORD)
    assert second.applied == []
    assert "nothing to apply" in second.gates["migrate"]
    assert "0 inserted, 0 updated" in second.gates["seed"]
    assert (fetch(target.dsn, rows), fetch(target.dsn, history)) == before  # not one row rewritten


def test_a_new_migration_runs_only_that_migration(target, sql_tree):
    olds = outputs_of(props_for(target, sql_tree), gate.run(target, sql_tree, app_password=APP_PASSWORD))
    write_migration(sql_tree, "0013_avatar_tags",
                    "CREATE TABLE avatar_tags (id serial PRIMARY KEY, tag text NOT NULL UNIQUE);\n"
                    "{{ grant_app('avatar_tags', 'SELECT') }}\n",
                    "-- shipshape:destructive\n{{ revoke_app('avatar_tags') }}\nDROP TABLE avatar_tags;\n")
    news = props_for(target, sql_tree)
    assert gate.provider_diff(olds, news) == ["checksums"]
    assert set(news["checksums"]["migrations"]) - set(olds["checksums"]["migrations"]) == {"0013_avatar_tags"}

    result = gate.run(target, sql_tree, app_password=APP_PASSWORD)
    assert result.applied == ["0013_avatar_tags"]
    assert result.schema_version == 13
    with as_app(target) as conn:
        assert conn.execute("SELECT count(*) FROM avatar_tags").fetchone() == (0,)


def test_a_changed_seed_or_check_changes_the_inputs(target, sql_tree):
    olds = outputs_of(props_for(target, sql_tree), gate.GateResult(env="dev", schema_version=11))
    seed = sql_tree / "seeds" / "ai_models.yaml"
    seed.write_text(seed.read_text() + "\n# a comment changes no row\n")
    assert gate.provider_diff(olds, props_for(target, sql_tree)) == []
    (sql_tree / "checks" / "no_users_named_root.sql.j2").write_text(
        "-- description: nobody is called root\n-- severity: error\n-- fix: rename\n"
        "SELECT id AS object FROM users WHERE name = 'root'\n")
    assert gate.provider_diff(olds, props_for(target, sql_tree)) == ["checksums"]


def test_a_failing_verify_fails_the_gate_and_the_app_role_cannot_log_in(own_target, sql_tree):
    target = own_target
    (sql_tree / "checks" / "always_fails.sql.j2").write_text(
        "-- description: a data invariant that does not hold\n-- severity: error\n"
        "-- fix: fix the data\nSELECT 'users' AS object\n")
    with pytest.raises(ProblemsFound) as caught:
        gate.run(target, sql_tree, app_password=APP_PASSWORD)
    assert caught.value.exit_code == 2
    assert fetch(target.dsn, "SELECT result FROM shipshape.deployments") == [("failed at verify",)]
    assert fetch(target.dsn, "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s",
                 [target.env.app_role]) == [(False,)]  # created NOLOGIN by 0001, left so
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        as_app(target).close()


def test_drift_fails_the_update_through_the_dynamic_provider(target, sql_tree):
    from shipshape.pulumi_gate.provider import MigrationGateProvider

    provider = MigrationGateProvider()
    props = props_for(target, sql_tree)
    created = provider.create(props)
    assert created.id == "migration-gate-dev"
    assert created.outs["schema_version"] == 12 and created.outs["app_login"] is True
    assert provider.diff(created.id, created.outs, props).changes is False

    with psycopg.connect(target.dsn, autocommit=True) as conn:  # incident 3: a column by hand
        conn.execute('ALTER TABLE avatars ADD COLUMN "handMade" text')
    with pytest.raises(ProblemsFound, match="does not match the code"):
        provider.update(created.id, created.outs, props)


def test_the_outputs_copy_no_secret_yet_a_new_password_or_database_reruns(target, sql_tree):
    """The outputs are what Pulumi keeps as the gate's state: never the superuser DSN nor
    the app password (they stay inputs, secret), only what the next diff needs."""
    from shipshape.pulumi_gate.provider import MigrationGateProvider

    provider = MigrationGateProvider()
    props = props_for(target, sql_tree)
    outs = provider.create(props).outs
    assert set(outs) == set(gate.OUTPUTS)
    password = target.dsn.partition("://")[2].partition("@")[0].partition(":")[2]
    for secret in [APP_PASSWORD, target.dsn] + ([password] if password else []):
        assert secret not in repr(outs)
    assert provider.diff("id", outs, props).changes is False
    assert provider.diff("id", outs, {**props, "app_password": "rotated-Pa55-2b"}).changes is True
    assert provider.diff("id", outs, {**props, "database_id": "db-container-2"}).changes is True
    # a recreated database is an empty one: the re-run migrates and seeds it from scratch
    assert gate.provider_diff(outs, {**props, "database_id": "db-container-2"}) == ["database_id"]


def test_the_tree_changing_after_the_program_ran_is_refused(target, sql_tree):
    props = props_for(target, sql_tree)
    write_migration(sql_tree, "0013_late", "SELECT 1;\n", "SELECT 1;\n")
    with pytest.raises(Refused, match="changed after the Pulumi program computed"):
        gate.provider_apply(props)
    assert fetch(target.dsn, "SELECT to_regclass('shipshape.history') IS NULL") == [(True,)]


def test_the_app_role_cannot_run_ddl_but_can_do_what_the_app_needs(target, sql_tree):
    gate.run(target, sql_tree, app_password=APP_PASSWORD)
    allowed = [
        "SELECT count(*) FROM users",
        "INSERT INTO users (email) VALUES ('new@example.com')",
        "UPDATE users SET \"creditBalance\" = \"creditBalance\" + 1 WHERE email = 'new@example.com'",
        "SELECT \"modelKey\" FROM ai_models",
        "SELECT max(version) FROM shipshape.history WHERE success",
    ]
    forbidden = [
        "CREATE TABLE hack (id int)",
        "CREATE TABLE shipshape.hack (id int)",
        "ALTER TABLE users ADD COLUMN hack text",
        "DROP TABLE ai_models",
        "TRUNCATE users",
        "CREATE INDEX hack_idx ON users (name)",
        "DELETE FROM users",
        "INSERT INTO ai_models (\"modelKey\") VALUES ('hack')",
        ("INSERT INTO shipshape.history (version, name, checksum, source_checksum, applied_by, "
         "success) VALUES (99, 'x', 'x', 'x', 'x', true)"),
        "CREATE SCHEMA hack",
    ]
    with as_app(target, autocommit=True) as conn:
        for statement in allowed:
            conn.execute(statement)
        for statement in forbidden:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_the_password_is_stored_as_a_scram_verifier_of_that_password(target, sql_tree):
    gate.run(target, sql_tree, app_password=APP_PASSWORD)
    (stored,) = fetch(target.dsn, "SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                      [target.env.app_role])[0]
    assert stored.startswith("SCRAM-SHA-256$") and APP_PASSWORD not in stored
    iterations_salt, keys = stored.removeprefix("SCRAM-SHA-256$").split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", APP_PASSWORD.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    assert base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key


def test_checksums_do_not_depend_on_where_the_tree_is(make_target, sql_tree):
    from tests.conftest import ROOT

    env = make_target("postgresql://unused", "dev").env
    assert gate.checksums(env, sql_tree) == gate.checksums(env, ROOT / "sql")
    prod = make_target("postgresql://unused", "prod").env
    assert gate.checksums(prod, sql_tree)["migrations"] != gate.checksums(env, sql_tree)["migrations"]


def test_the_contract_gate_defers_while_an_old_release_runs_then_runs(target, sql_tree):
    """The docker platform's contract gate runs after the new replicas exist but before
    Pulumi deletes the replaced ones: it defers (no failure, nothing applied), and its
    next run, once they are gone, applies the contract migration."""
    gate.run(target, sql_tree, app_password=APP_PASSWORD)  # expand: everything so far
    write_migration(sql_tree, "0013_usage_check",
                    "-- shipshape:phase contract\n"
                    'ALTER TABLE avatars ADD CONSTRAINT "avatars_usageCount_check" '
                    'CHECK ("usageCount" >= 0);\n',
                    'ALTER TABLE avatars DROP CONSTRAINT "avatars_usageCount_check";\n')
    with psycopg.connect(target.dsn) as conn:
        conn.execute("INSERT INTO shipshape.app_instances (instance, release) VALUES ('old', 12)")
    contract = target.__class__(with_settings(target.env, deploy_phase="contract"),
                                target.dsn, target.source)
    props = {**props_for(contract, sql_tree), "app_password": ""}
    deferred = gate.provider_apply(props)
    assert "old runs release 0012" in deferred["deferred"] and deferred["schema_version"] == 12
    assert fetch(target.dsn, "SELECT count(*) FROM shipshape.history WHERE version = 13") == [(0,)]
    assert "deferred" in gate.provider_diff(deferred, props)  # the next update runs it again
    with psycopg.connect(target.dsn) as conn:
        conn.execute("DELETE FROM shipshape.app_instances")
    done = gate.provider_apply(props)
    assert done["deferred"] == "" and done["schema_version"] == 13
    assert gate.provider_diff(done, props) == []
    # an expand gate never defers: a refusal there is a failure
    with psycopg.connect(target.dsn) as conn:
        conn.execute("INSERT INTO shipshape.app_instances (instance, release) VALUES ('x', 1)")
    assert gate.run(target, sql_tree).deferred == ""
