"""The migration engine against real PostgreSQL: history, refusals, errors, locks.

The tests on `server_dsn` run on both test servers (the system PostgreSQL and the embedded
18; see tests/conftest.py): applying, recording, rolling back, and locating errors by the
server's own positions, which are what could differ between majors."""

from __future__ import annotations

import psycopg
import pytest

from shipshape import db
from shipshape.engine import migrations
from shipshape.errors import Busy, ConfigError, Refused, SQLFailed
from tests.treeutil import small_tree, write_migration


def migrate(target, tree, **kw):
    loaded = migrations.load(tree, target.env)
    with db.connect(target) as conn:
        with db.advisory_lock(conn, target.env.migration_lock_wait):
            return migrations.migrate(conn, target.env, loaded, **kw)


def history(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT version, name, success FROM shipshape.history ORDER BY 1").fetchall()


def columns(dsn, table):
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "ORDER BY ordinal_position", [table])]


def test_applies_in_order_and_records_history(tmp_path, server_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    before, applied = migrate(make_target(server_dsn), tree)
    assert before is None and [m.version for m in applied] == [1, 2]
    assert history(server_dsn) == [(1, "0001_items", True), (2, "0002_item_price", True)]
    with psycopg.connect(server_dsn) as conn:
        row = conn.execute("SELECT checksum, source_checksum, applied_by, duration_ms "
                           "FROM shipshape.history WHERE version = 1").fetchone()
    loaded = migrations.load(tree, make_target(server_dsn).env)
    assert row[0] == loaded[0].checksum and row[1] == loaded[0].source_checksum
    assert "@" in row[2] and row[3] >= 0
    assert migrate(make_target(server_dsn), tree)[1] == []  # second run: nothing to do


def test_migrate_to_stops_at_version(tmp_path, fresh_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    migrate(make_target(fresh_dsn), tree, to=1)
    assert [v for v, *_ in history(fresh_dsn)] == [1]
    with pytest.raises(ConfigError, match="no migration has version 0007"):
        migrate(make_target(fresh_dsn), tree, to=7)


@pytest.mark.parametrize("layout,message", [
    ({"1_bad": ("SELECT 1;", "SELECT 1;")}, "not a migration directory named NNNN_slug"),
    ({"0001_a": ("SELECT 1;", "SELECT 1;"), "0001_b": ("SELECT 1;", "SELECT 1;")},
     "version 0001 is also used by 0001_a"),
    ({"0001_Upper": ("SELECT 1;", "SELECT 1;")}, "not a migration directory"),
])
def test_malformed_or_duplicate_versions_are_refused(tmp_path, layout, message):
    for name, (up, down) in layout.items():
        write_migration(tmp_path, name, up, down)
    with pytest.raises(Refused, match=message) as caught:
        migrations.discover(tmp_path)
    assert caught.value.exit_code == 3


def test_missing_rollback_is_refused(tmp_path):
    write_migration(tmp_path, "0001_a", "SELECT 1;", "SELECT 1;")
    (tmp_path / "migrations" / "0001_a" / "rollback.sql.j2").unlink()
    with pytest.raises(Refused, match="missing rollback.sql.j2"):
        migrations.discover(tmp_path)


def test_unreadable_template_is_refused_naming_it(tmp_path):
    write_migration(tmp_path, "0001_a", "SELECT 1;", "SELECT 1;")
    path = tmp_path / "migrations" / "0001_a" / "migrate.sql.j2"
    path.write_bytes(b"SELECT '\xff\xfe';")  # not UTF-8: it cannot be read as a template
    with pytest.raises(Refused) as caught:
        migrations.discover(tmp_path)
    assert caught.value.exit_code == 3
    assert f"{path}: cannot be read" in str(caught.value.details)


def test_edited_applied_migration_is_refused_with_both_checksums(tmp_path, fresh_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn)
    migrate(target, tree)
    old = migrations.load(tree, target.env)[0].checksum
    path = tree / "migrations" / "0001_items" / "migrate.sql.j2"
    path.write_text(path.read_text().replace("name text", "name varchar(50)"))
    new = migrations.load(tree, target.env)[0].checksum
    with pytest.raises(Refused) as caught:
        migrate(target, tree)
    text = str(caught.value)
    assert caught.value.exit_code == 3
    assert str(path) in text and old[:12] in text and new[:12] in text


def test_database_ahead_of_code_is_refused(tmp_path, fresh_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn)
    migrate(target, tree)
    import shutil

    shutil.rmtree(tree / "migrations" / "0002_item_price")  # the artifact lost a migration
    with pytest.raises(Refused, match="ahead of the code.*0002_item_price") as caught:
        migrate(target, tree)
    assert caught.value.exit_code == 3
    assert columns(fresh_dsn, "items") == ["id", "name", "price"]  # nothing was "fixed"


def test_sql_error_names_line_and_leaves_nothing_applied(tmp_path, server_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    write_migration(tree, "0003_broken",
                    "ALTER TABLE items ADD COLUMN colour text;\n\nCREATE INDEX ON items (nope);\n",
                    "-- shipshape:destructive\nALTER TABLE items DROP COLUMN colour;\n")
    target = make_target(server_dsn)
    with pytest.raises(SQLFailed) as caught:
        migrate(target, tree)
    text = str(caught.value)
    assert caught.value.exit_code == 6
    assert "0003_broken" in text and "rendered line 3" in text and '"nope" does not exist' in text
    assert "colour" not in columns(server_dsn, "items")
    assert [v for v, *_ in history(server_dsn)] == [1, 2]


def test_error_without_position_is_located_by_replay(tmp_path, server_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    write_migration(tree, "0003_dupes",
                    "INSERT INTO items (name) VALUES ('a');\nINSERT INTO items (name) VALUES ('b');\n"
                    "INSERT INTO items (name) VALUES ('a');\n", "DELETE FROM items;")
    # Its undeclared destructive rollback is not about to run: migrating does not parse it.
    with pytest.raises(SQLFailed, match="rendered line 3.*duplicate key"):
        migrate(make_target(server_dsn), tree)
    with psycopg.connect(server_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 0


def test_non_transactional_failure_is_recorded_and_blocks_until_retried(tmp_path, server_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    directory = write_migration(
        tree, "0003_index",
        "-- shipshape:no-transaction\nCREATE INDEX CONCURRENTLY items_price_idx ON items (price);\n"
        "CREATE INDEX CONCURRENTLY items_bad_idx ON items (nope);\n",
        "DROP INDEX IF EXISTS items_price_idx;\n")
    target = make_target(server_dsn)
    with pytest.raises(SQLFailed, match="non-transactional"):
        migrate(target, tree)
    assert history(server_dsn)[-1] == (3, "0003_index", False)
    with pytest.raises(Refused, match="--retry-failed"):
        migrate(target, tree)
    (directory / "migrate.sql.j2").write_text(
        "-- shipshape:no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_price_idx ON items (price);\n")
    migrate(target, tree, retry_failed=True)
    assert history(server_dsn)[-1] == (3, "0003_index", True)


def test_lock_timeout_retries_then_names_the_holder(tmp_path, fresh_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn, lock_timeout="100ms", lock_retries="2", lock_retry_backoff="50ms")
    migrate(target, tree, to=1)
    blocker = psycopg.connect(fresh_dsn, application_name="long report")
    blocker.execute("LOCK TABLE items IN ACCESS SHARE MODE")  # stays open: a long transaction
    blocker_pid = blocker.info.backend_pid
    try:
        with pytest.raises(Busy) as caught:
            migrate(target, tree)
    finally:
        blocker.close()
    text = str(caught.value)
    assert caught.value.exit_code == 4
    assert "0002_item_price" in text and "3 attempts" in text
    assert f"pid {blocker_pid}" in text and "long report" in text
    assert "price" not in columns(fresh_dsn, "items")
    migrate(target, tree)  # the holder is gone: the deploy succeeds
    assert "price" in columns(fresh_dsn, "items")


def test_advisory_lock_waiter_times_out_naming_the_holder(fresh_dsn, make_target):
    target = make_target(fresh_dsn)
    holder = db.connect(target, purpose="deploy")
    with db.advisory_lock(holder, "5s"):
        waiter = db.connect(target, purpose="waiter")
        with pytest.raises(Busy) as caught:
            with db.advisory_lock(waiter, "200ms"):
                pass
        waiter.close()
    text = str(caught.value)
    assert caught.value.exit_code == 4
    assert f"pid {holder.info.backend_pid}" in text and "shipshape deploy" in text and "since" in text
    holder.close()


def test_rollback_to_version_and_destructive_refusal(tmp_path, server_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    target = make_target(server_dsn)
    migrate(target, tree)
    prod_like = make_target(server_dsn, "staging")
    loaded = migrations.load(tree, prod_like.env)
    with db.connect(prod_like) as conn:
        with pytest.raises(Refused, match="forbids destructive"):
            migrations.rollback(conn, prod_like.env, loaded, 1)
    assert columns(server_dsn, "items") == ["id", "name", "price"]
    with db.connect(target) as conn:
        done = migrations.rollback(conn, target.env, migrations.load(tree, target.env), 1)
    assert [m.version for m in done] == [2]
    assert columns(server_dsn, "items") == ["id", "name"]
    assert [v for v, *_ in history(server_dsn)] == [1]


def test_undeclared_destructive_statement_is_refused_when_it_is_about_to_run(tmp_path):
    """Loading parses nothing; the gate classifies what is about to run, naming
    file:line, the effect and the statement."""
    from shipshape.settings import load_environment

    write_migration(tmp_path, "0001_a", "SELECT 1;\nALTER TABLE t DROP COLUMN c;", "SELECT 1;")
    env = load_environment("local", config_dir=tmp_path)
    loaded = migrations.load(tmp_path, env)  # no refusal: nothing is about to run
    with pytest.raises(Refused, match="does not declare `-- shipshape:destructive`") as refused:
        migrations.check_declared(loaded, env)
    assert "0001_a/migrate.sql.j2:2: drop column t.c: ALTER TABLE t DROP COLUMN c" in str(
        refused.value)
    migrations.check_declared(loaded, env, rollback=True)  # the rollback destroys nothing



def test_a_rollback_is_judged_by_its_own_declaration(tmp_path):
    """Each direction declares for itself: a declared destructive migration does not
    license an undeclared destructive rollback, nor the reverse."""
    from shipshape.settings import load_environment

    write_migration(tmp_path, "0001_a", "-- shipshape:destructive\nALTER TABLE t DROP COLUMN c;",
                    "ALTER TABLE t DROP COLUMN d;")
    write_migration(tmp_path, "0002_b", "ALTER TABLE u DROP COLUMN c;",
                    "-- shipshape:destructive\nDROP TABLE u;")
    env = load_environment("local", config_dir=tmp_path)
    first, second = migrations.load(tmp_path, env)
    migrations.check_declared([first], env)
    with pytest.raises(Refused, match=r"0001_a/rollback.sql.j2 contains destructive SQL"):
        migrations.check_declared([first], env, rollback=True)
    migrations.check_declared([second], env, rollback=True)
    with pytest.raises(Refused, match=r"0002_b/migrate.sql.j2 contains destructive SQL"):
        migrations.check_declared([second], env)

def test_unparsable_sql_is_bad_input_naming_its_line(tmp_path):
    from shipshape.settings import load_environment

    write_migration(tmp_path, "0001_a", "SELECT 1;\n\nCREATE TABLE t (id int,);\n", "SELECT 1;")
    env = load_environment("local", config_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"0001_a/migrate.sql.j2:3 .*not valid PostgreSQL"):
        migrations.check_declared(migrations.load(tmp_path, env), env)


def test_undeclared_destructive_migration_is_refused_before_anything_runs(
        tmp_path, fresh_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    write_migration(tree, "0003_drop", "ALTER TABLE items DROP COLUMN price;", "SELECT 1;")
    with pytest.raises(Refused, match="0003_drop.*does not declare") as caught:
        migrate(make_target(fresh_dsn), tree)
    assert caught.value.exit_code == 3
    with psycopg.connect(fresh_dsn) as conn:  # refused while planning: nothing was written
        assert conn.execute("SELECT to_regclass('shipshape.history')").fetchone()[0] is None
        assert conn.execute("SELECT to_regclass('items')").fetchone()[0] is None


@pytest.mark.parametrize("sql_text,destructive", [
    ("DROP TABLE items;", True),
    ("alter table items drop column price;", True),
    ("ALTER TABLE items ALTER COLUMN price TYPE bigint;", True),
    ("TRUNCATE items;", True),
    ("DELETE FROM items WHERE true;", True),
    ("ALTER TABLE items DROP CONSTRAINT items_pkey;", False),
    ("ALTER TABLE items ALTER COLUMN price DROP DEFAULT;", False),
    ("DROP INDEX items_idx;", False),
    ("COMMENT ON TABLE items IS 'we never DROP TABLE here';", False),
    ("-- DROP TABLE items;\nSELECT 1;", False),
    ("CREATE FUNCTION f() RETURNS void AS $$ DELETE FROM x $$ LANGUAGE sql;", False),
    ("SELECT E'\\'';\nDROP TABLE items;", True),
])
def test_destructive_detection(tmp_path, sql_text, destructive):
    from shipshape.settings import load_environment

    write_migration(tmp_path, "0001_a", sql_text, "SELECT 1;")
    env = load_environment("local", config_dir=tmp_path)
    loaded = migrations.load(tmp_path, env)
    if destructive:
        with pytest.raises(Refused):
            migrations.check_declared(loaded, env)
    else:
        migrations.check_declared(loaded, env)


def test_a_template_error_stops_migrate_before_it_writes_anything(tmp_path, fresh_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    write_migration(tree, "0003_bad", "SELECT 1;\nGRANT SELECT ON items TO {{ env.app_rol }};\n",
                    "SELECT 1;")
    with pytest.raises(ConfigError, match="0003_bad/migrate.sql.j2:2") as caught:
        migrate(make_target(fresh_dsn), tree)  # rendered while planning, before the first write
    assert caught.value.exit_code == 5
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT to_regclass('shipshape.history')").fetchone()[0] is None
        assert conn.execute("SELECT to_regclass('items')").fetchone()[0] is None
