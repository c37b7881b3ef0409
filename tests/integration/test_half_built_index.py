"""A half-built index (issue 10): a CREATE INDEX CONCURRENTLY that failed or was killed
leaves the index INVALID. The next deploy drops and rebuilds it, and says so; a
migration is never recorded as a success while an index it creates is INVALID.

The INVALID index is real: CREATE UNIQUE INDEX CONCURRENTLY on duplicate data fails and
leaves it behind, exactly as a killed build does.
"""

from __future__ import annotations

import psycopg
import pytest

from shipshape import db
from shipshape.engine import migrations
from shipshape.errors import Refused, SQLFailed
from shipshape.progress import Progress
from tests.conftest import run_invoke
from tests.treeutil import small_tree, write_migration

INDEX = "items_price_key"


class Recorded(Progress):
    def __init__(self):
        self.said = []

    def info(self, message: str) -> None:
        self.said.append(message)


def add_index_migration(tree, if_not_exists: bool):
    guard = "IF NOT EXISTS " if if_not_exists else ""
    write_migration(tree, "0003_unique_price",
                    f"-- shipshape:no-transaction\n"
                    f"CREATE UNIQUE INDEX CONCURRENTLY {guard}{INDEX} ON items (price);\n",
                    f"-- shipshape:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS {INDEX};\n")


def migrate(target, tree, **kw):
    loaded = migrations.load(tree, target.env)
    with db.connect(target) as conn, db.advisory_lock(conn, target.env.migration_lock_wait):
        return migrations.migrate(conn, target.env, loaded, **kw)


def run(dsn, statement):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)


def index_valid(dsn):
    """None when the index does not exist, else whether it is valid."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                           [INDEX]).fetchone()
    return None if row is None else row[0]


def history(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT version, success FROM shipshape.history ORDER BY 1").fetchall()


def half_build(dsn):
    """What a killed build leaves: an INVALID index (here from a duplicate)."""
    run(dsn, "INSERT INTO items (name, price) VALUES ('apple', 3), ('pear', 3)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        run(dsn, f"CREATE UNIQUE INDEX CONCURRENTLY {INDEX} ON items (price)")
    assert index_valid(dsn) is False


@pytest.mark.parametrize("if_not_exists", [True, False], ids=["if-not-exists", "plain"])
def test_a_pending_migration_rebuilds_the_index_a_killed_build_left(
        tmp_path, fresh_dsn, make_target, if_not_exists):
    tree = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn)
    migrate(target, tree)
    half_build(fresh_dsn)
    run(fresh_dsn, "UPDATE items SET price = 5 WHERE name = 'pear'")  # the cause, fixed
    add_index_migration(tree, if_not_exists)
    progress = Recorded()
    _, applied = migrate(target, tree, progress=progress)
    assert [m.name for m in applied] == ["0003_unique_price"]
    assert index_valid(fresh_dsn) is True
    assert history(fresh_dsn)[-1] == (3, True)
    assert any(f"dropped the INVALID index public.{INDEX}" in s for s in progress.said)


def test_a_failed_build_is_rebuilt_by_the_retry(tmp_path, fresh_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn)
    migrate(target, tree)
    run(fresh_dsn, "INSERT INTO items (name, price) VALUES ('apple', 3), ('pear', 3)")
    add_index_migration(tree, if_not_exists=False)
    with pytest.raises(SQLFailed, match="duplicate"):
        migrate(target, tree)
    assert index_valid(fresh_dsn) is False and history(fresh_dsn)[-1] == (3, False)
    with pytest.raises(Refused, match="--retry-failed"):
        migrate(target, tree)
    run(fresh_dsn, "UPDATE items SET price = 5 WHERE name = 'pear'")
    progress = Recorded()
    migrate(target, tree, retry_failed=True, progress=progress)
    assert index_valid(fresh_dsn) is True and history(fresh_dsn)[-1] == (3, True)
    assert any("dropped the INVALID index" in s for s in progress.said)


def test_never_recorded_as_a_success_while_its_index_is_invalid(tmp_path, fresh_dsn, make_target):
    """IF NOT EXISTS used to skip the half-built index and record a success: the cause
    is still there, so the rebuild fails and the migration is recorded as failed."""
    tree = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn)
    migrate(target, tree)
    half_build(fresh_dsn)
    add_index_migration(tree, if_not_exists=True)
    with pytest.raises(SQLFailed):
        migrate(target, tree)
    assert history(fresh_dsn)[-1] == (3, False)
    assert index_valid(fresh_dsn) is False



def test_apply_alone_never_records_a_success_while_its_index_is_invalid(
        tmp_path, fresh_dsn, make_target):
    """migrate() drops a half-built index first; migrations.apply is also called without
    that (runbook reapply, the shadow). There IF NOT EXISTS skips the INVALID index and
    the SQL succeeds, so the check after it is all that stands between the migration
    and a success row."""
    tree = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn)
    migrate(target, tree)
    half_build(fresh_dsn)
    add_index_migration(tree, if_not_exists=True)
    migration = migrations.load(tree, target.env)[-1]
    with db.connect(target) as conn, pytest.raises(SQLFailed, match="is INVALID"):
        migrations.apply(conn, target.env, migration, applied_by="test")
    assert history(fresh_dsn)[-1] == (3, False)
    assert index_valid(fresh_dsn) is False

def test_deploy_says_it_rebuilt_the_index(tmp_path, fresh_dsn):
    tree = small_tree(tmp_path / "sql")
    environ = {"SHIPSHAPE_STATE_DIR": str(tmp_path / "state"), "DATABASE_URL": fresh_dsn}
    first = run_invoke("deploy", "--env", "staging", "--sql-dir", str(tree), env=environ)
    assert first.returncode == 0, first.stdout + first.stderr
    run(fresh_dsn, "INSERT INTO items (name, price) VALUES ('plum', 3)")  # apple costs 3
    with pytest.raises(psycopg.errors.UniqueViolation):
        run(fresh_dsn, f"CREATE UNIQUE INDEX CONCURRENTLY {INDEX} ON items (price)")
    run(fresh_dsn, "UPDATE items SET price = 7 WHERE name = 'plum'")
    add_index_migration(tree, if_not_exists=True)
    result = run_invoke("deploy", "--env", "staging", "--sql-dir", str(tree), env=environ)
    assert result.returncode == 0, result.stdout + result.stderr
    out = " ".join((result.stdout + result.stderr).split())
    assert f"dropped the INVALID index public.{INDEX}" in out, out
    assert index_valid(fresh_dsn) is True and history(fresh_dsn)[-1] == (3, True)
