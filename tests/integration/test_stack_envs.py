"""Free stack names on the tasks' side: `--env eu-prod` runs with the rules of the profile its
stack file declares, as the operator runs it (a process, its exit code, its database)."""

from __future__ import annotations

import shutil

import psycopg
import pytest

from tests.conftest import ROOT, run_invoke
from tests.treeutil import small_tree, write_migration


@pytest.fixture
def project(tmp_path):
    """A project directory with two free-named stacks, of the prod and the dev profile."""
    directory = tmp_path / "project"
    directory.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", directory / "Pulumi.yaml")
    (directory / "Pulumi.eu-prod.yaml").write_text("config:\n  shipshape:profile: prod\n")
    (directory / "Pulumi.alice-dev.yaml").write_text("config:\n  shipshape:profile: dev\n")
    return directory


def with_scratch(tree):
    write_migration(tree, "0003_scratch", "CREATE TABLE scratch (id integer);\n",
                    "-- shipshape:destructive\nDROP TABLE scratch;\n")
    return tree


def dropping(tree):
    """A declared destructive migration: dev runs it, prod refuses it."""
    write_migration(tree, "0004_drop_scratch", "-- shipshape:destructive\nDROP TABLE scratch;\n",
                    "CREATE TABLE scratch (id integer);\n")
    return tree


def has_scratch(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regclass('scratch') IS NOT NULL").fetchone()[0]


def deploy(project, env: str, dsn: str, tree, tmp_path):
    return run_invoke("deploy", "--env", env, "--dsn", dsn, "--sql-dir", str(tree), cwd=project,
                      env={"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")})


def test_a_prod_profile_stack_refuses_what_prod_refuses(project, fresh_dsn, tmp_path):
    tree = with_scratch(small_tree(tmp_path / "sql"))
    assert deploy(project, "eu-prod", fresh_dsn, tree, tmp_path).returncode == 0
    result = deploy(project, "eu-prod", fresh_dsn, dropping(tree), tmp_path)
    assert result.returncode == 3, result.stderr
    assert "Env eu-prod forbids destructive statements" in " ".join(result.stderr.split())
    assert has_scratch(fresh_dsn)  # nothing lost
    with psycopg.connect(fresh_dsn) as conn:  # the database knows the stack, not the profile
        assert conn.execute("SELECT name FROM shipshape.environment").fetchone() == ("eu-prod",)


def test_a_dev_profile_stack_runs_it(project, fresh_dsn, tmp_path):
    tree = dropping(with_scratch(small_tree(tmp_path / "sql")))
    result = deploy(project, "alice-dev", fresh_dsn, tree, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not has_scratch(fresh_dsn)


def test_an_unknown_env_is_exit_5_with_the_known_ones_and_the_command_that_creates_it(
        project, fresh_dsn, tmp_path):
    result = run_invoke("db.status", "--env", "us-prod", "--dsn", fresh_dsn, cwd=project)
    assert result.returncode == 5, result.stderr
    message = " ".join(result.stderr.split())
    assert "Known environments: local, dev, staging, prod, alice-dev, eu-prod." in message
    assert "> Pulumi.us-prod.yaml" in message and "Traceback" not in result.stderr
    with psycopg.connect(fresh_dsn) as conn:  # nothing touched
        assert conn.execute("SELECT to_regclass('shipshape.migrations')").fetchone() == (None,)
