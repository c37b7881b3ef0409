"""Output people can trust (issue 11): what a command did is one closing sentence on stderr,
with the progress; stdout carries only the output (SQL, tables, JSON), so `> plan.sql` or
`| jq` never catches a sentence, and no message is printed twice."""

from __future__ import annotations

import pytest

from tests.conftest import run_invoke
from tests.treeutil import small_tree


@pytest.fixture
def tree(tmp_path):
    return str(small_tree(tmp_path / "sql"))


def invoke(dsn, tree, state, *args):
    return run_invoke(*args, "--dsn", dsn, "--sql-dir", tree, env=state)


def test_migrate_and_rollback_say_what_they_did_once_on_stderr(fresh_dsn, tree, state):
    migrated = invoke(fresh_dsn, tree, state, "db.migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout == ""
    assert migrated.stderr.count("migration(s) applied; local is at version") == 1
    assert migrated.stderr.rstrip().splitlines()[-1].endswith(".")

    rolled = invoke(fresh_dsn, tree, state, "db.rollback", "--to", "0")
    assert rolled.returncode == 0, rolled.stderr
    assert rolled.stdout == ""
    assert rolled.stderr.count("migration(s) rolled back; local is at version 0000.") == 1


def test_a_dry_run_puts_only_the_sql_on_stdout(fresh_dsn, tree, state):
    planned = invoke(fresh_dsn, tree, state, "db.migrate", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "CREATE TABLE" in planned.stdout
    assert "migration(s) applied" not in planned.stdout + planned.stderr


def test_a_rollback_says_where_the_database_is_not_where_it_was_asked_to_go(fresh_dsn, tree,
                                                                            state):
    rolled = invoke(fresh_dsn, tree, state, "db.rollback", "--to", "7")
    assert rolled.returncode == 0, rolled.stderr
    assert "0 migration(s) rolled back; local is at version 0000." in rolled.stderr


def test_a_failure_prints_its_paragraph_once(fresh_dsn, tree, state):
    failed = invoke(fresh_dsn, tree, state, "db.rollback", "--to", "-1")
    assert failed.returncode == 5, failed.stderr
    assert failed.stdout == ""
    assert failed.stderr.count("error:") == 1, failed.stderr
