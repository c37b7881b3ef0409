"""The database knows which env it is: the attacker's repros, through the CLI.

`DATABASE_URL=<staging db> invoke db.rollback --to 0` dropped every table (exit 0), and
`DATABASE_URL=<staging db> invoke deploy` seeded local's demo user into staging, because
--env defaults to local. Each is now refused (exit 3) with nothing changed.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import run_invoke
from tests.treeutil import small_tree


@pytest.fixture
def tree(tmp_path):
    return str(small_tree(tmp_path / "sql"))


def fetch(dsn, query):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def snapshot(dsn):
    return (fetch(dsn, "SELECT version, success FROM shipshape.history ORDER BY version"),
            fetch(dsn, "SELECT name, price FROM items ORDER BY name"),
            fetch(dsn, "SELECT name FROM shipshape.environment"))


@pytest.fixture
def staging_db(fresh_dsn, tree, state):
    result = run_invoke("deploy", "--env", "staging", "--sql-dir", tree,
                        env={**state, "DATABASE_URL": fresh_dsn})
    assert result.returncode == 0, result.stderr
    assert fetch(fresh_dsn, "SELECT name FROM shipshape.environment") == [("staging",)]
    return fresh_dsn


@pytest.mark.parametrize("command", [
    ("db.rollback", "--to", "0"),
    ("deploy",),
    ("db.seed",),
    ("db.migrate",),
    ("deploy", "--dry-run"),
    ("runbook.run", "models-missing", "--yes"),
])
def test_default_env_on_a_staging_database_is_refused(staging_db, tree, state, command):
    before = snapshot(staging_db)
    result = run_invoke(*command, "--sql-dir", tree, env={**state, "DATABASE_URL": staging_db})
    assert result.returncode == 3, result.stdout + result.stderr
    assert "stamped `staging`" in result.stderr and "--env local" in result.stderr
    assert "--env staging" in result.stderr  # the command that proceeds
    assert snapshot(staging_db) == before


def test_the_stamped_env_proceeds(staging_db, tree, state):
    result = run_invoke("deploy", "--env", "staging", "--sql-dir", tree,
                        env={**state, "DATABASE_URL": staging_db})
    assert result.returncode == 0, result.stderr


def test_doctor_reports_the_mismatch_without_changing_anything(staging_db, state):
    before = snapshot(staging_db)
    # the shipped tree and runbooks: the small tree has none of the runbooks' fixes
    result = run_invoke("doctor", env={**state, "DATABASE_URL": staging_db})
    assert result.returncode == 2
    assert "ENV_MISMATCH" in result.stdout
    assert snapshot(staging_db) == before


def test_a_database_deployed_before_stamps_is_known_by_its_last_deploy(staging_db, tree, state):
    with psycopg.connect(staging_db, autocommit=True) as conn:
        conn.execute("DROP TABLE shipshape.environment")  # as deployed by an older shipshape
    refused = run_invoke("db.seed", "--sql-dir", tree, env={**state, "DATABASE_URL": staging_db})
    assert refused.returncode == 3 and "last deployed as `staging`" in refused.stderr
    again = run_invoke("deploy", "--env", "staging", "--sql-dir", tree,
                       env={**state, "DATABASE_URL": staging_db})
    assert again.returncode == 0, again.stderr
    assert fetch(staging_db, "SELECT name FROM shipshape.environment") == [("staging",)]


def test_restamp_is_deliberate(staging_db, tree, state):
    env = {**state, "DATABASE_URL": staging_db}
    wrong_from = run_invoke("db.stamp", "--env", "dev", "--from", "prod", "--yes", env=env)
    assert wrong_from.returncode == 3 and "--from staging" in wrong_from.stderr
    unconfirmed = run_invoke("db.stamp", "--env", "dev", "--from", "staging", env=env)
    assert unconfirmed.returncode == 3 and "--yes" in unconfirmed.stderr
    assert fetch(staging_db, "SELECT name FROM shipshape.environment") == [("staging",)]
    dry = run_invoke("db.stamp", "--env", "dev", "--from", "staging", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "Nothing was changed" in dry.stdout
    assert fetch(staging_db, "SELECT name FROM shipshape.environment") == [("staging",)]
    done = run_invoke("db.stamp", "--env", "dev", "--from", "staging", "--yes",
                      "--reason", "staging copy becomes dev", env=env)
    assert done.returncode == 0, done.stderr
    assert fetch(staging_db, "SELECT name, reason FROM shipshape.environment") == [
        ("dev", "staging copy becomes dev")]
    assert run_invoke("deploy", "--env", "dev", "--sql-dir", tree, env=env).returncode == 0
