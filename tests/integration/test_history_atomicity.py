"""A migration and its history row are one transaction (and so are a rollback and the
row's deletion): fault injection, not a race.

The fault is a BEFORE trigger on shipshape.history, created by the test, that raises
for one version: the migration's SQL has run by then, so if its row were written (or
deleted) in a transaction of its own, the SQL would stay and the history would not say
so. Both directions must leave nothing of the failed attempt, and exit 6.
"""

from __future__ import annotations

import psycopg
import pytest

from shipshape import db
from shipshape.engine import migrations
from shipshape.errors import SQLFailed
from tests.treeutil import small_tree

FAULT = """
CREATE FUNCTION shipshape.refuse_history_{op}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF {row}.version = {version} THEN
        RAISE EXCEPTION 'injected fault: history {op} of version %', {row}.version;
    END IF;
    RETURN {row};
END $$;
CREATE TRIGGER refuse_history_{op} BEFORE {op} ON shipshape.history
    FOR EACH ROW EXECUTE FUNCTION shipshape.refuse_history_{op}();
"""


def inject(dsn: str, op: str, version: int) -> None:
    row = "NEW" if op == "insert" else "OLD"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(FAULT.format(op=op, row=row, version=version))


def heal(dsn: str, op: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TRIGGER refuse_history_{op} ON shipshape.history")
        conn.execute(f"DROP FUNCTION shipshape.refuse_history_{op}()")


def columns(dsn: str, table: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum", [table])]


def history(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT version, success FROM shipshape.history ORDER BY version").fetchall()


def migrate(target, tree, **kw):
    loaded = migrations.load(tree, target.env)
    with db.connect(target) as conn, db.advisory_lock(conn, target.env.migration_lock_wait):
        return migrations.migrate(conn, target.env, loaded, **kw)


def rollback(target, tree, to):
    loaded = migrations.load(tree, target.env)
    with db.connect(target) as conn, db.advisory_lock(conn, target.env.migration_lock_wait):
        return migrations.rollback(conn, target.env, loaded, to)


def test_a_history_row_that_cannot_be_written_takes_the_migration_with_it(
        tmp_path, fresh_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn)
    migrate(target, tree, to=1)
    inject(fresh_dsn, "insert", 2)

    with pytest.raises(SQLFailed) as caught:
        migrate(target, tree)
    assert caught.value.exit_code == 6
    assert "0002_item_price" in str(caught.value) and "injected fault" in str(caught.value)
    # the ALTER TABLE ran before the insert failed: it must be gone with it
    assert columns(fresh_dsn, "items") == ["id", "name"]
    assert history(fresh_dsn) == [(1, True)]

    heal(fresh_dsn, "insert")
    migrate(target, tree)  # exactly once, now that the row can be written
    assert columns(fresh_dsn, "items") == ["id", "name", "price"]
    assert history(fresh_dsn) == [(1, True), (2, True)]


def test_a_history_row_that_cannot_be_deleted_keeps_the_rolled_back_migration(
        tmp_path, fresh_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn)  # local: destructive rollbacks are allowed
    migrate(target, tree)
    inject(fresh_dsn, "delete", 2)

    with pytest.raises(SQLFailed) as caught:
        rollback(target, tree, to=1)
    assert caught.value.exit_code == 6 and "injected fault" in str(caught.value)
    # the DROP COLUMN ran before the delete failed: it must be undone with it
    assert columns(fresh_dsn, "items") == ["id", "name", "price"]
    assert history(fresh_dsn) == [(1, True), (2, True)]

    heal(fresh_dsn, "delete")
    rollback(target, tree, to=1)
    assert columns(fresh_dsn, "items") == ["id", "name"]
    assert history(fresh_dsn) == [(1, True)]
