"""A transactional migration is one message to the server: BEGIN, the env's timeouts, its
SQL, its history row and COMMIT. Counted with libpq's own protocol trace, not by timing.
The before-commit hook runs inside that transaction, and a failure there takes the
migration and its row with it."""

from __future__ import annotations

import psycopg
import pytest

from shipshape import db
from shipshape.engine import history, migrations
from shipshape.errors import SQLFailed
from tests.treeutil import small_tree, write_migration


def round_trips(trace: str) -> int:
    """Each exchange with the server ends with its ReadyForQuery."""
    return sum(1 for line in trace.splitlines() if "\tB\t" in line and "\tReadyForQuery" in line)


def traced_apply(conn, env, migration, tmp_path, **kw):
    path = tmp_path / "trace.txt"
    with open(path, "w") as out:
        conn.pgconn.trace(out.fileno())
        try:
            migrations.apply(conn, env, migration, applied_by="test", **kw)
        finally:
            conn.pgconn.untrace()
    return path.read_text()


@pytest.fixture
def setup(tmp_path, fresh_dsn, make_target):
    target = make_target(fresh_dsn, lock_timeout="2s", statement_timeout="1min")
    loaded = migrations.load(small_tree(tmp_path / "sql"), target.env)
    conn = db.connect(target)
    history.ensure_history(conn)
    yield target, loaded, conn
    conn.close()


def test_a_migration_is_one_message(setup, tmp_path, fresh_dsn):
    target, loaded, conn = setup
    trace = traced_apply(conn, target.env, loaded[0], tmp_path)
    assert round_trips(trace) == 1, trace
    assert "BEGIN;" in trace and "SET LOCAL lock_timeout = '2s'" in trace
    assert "CREATE TABLE items" in trace and "INSERT INTO shipshape.history" in trace
    assert "COMMIT;" in trace
    with psycopg.connect(fresh_dsn) as other:  # committed: another session sees it
        assert other.execute("SELECT name, success, duration_ms >= 0 FROM shipshape.history"
                             ).fetchall() == [("0001_items", True, True)]
        assert other.execute("SELECT to_regclass('items') IS NOT NULL").fetchone()[0]
    # the timeouts were local to that transaction
    assert conn.execute("SHOW lock_timeout").fetchone()[0] == "0"
    assert conn.autocommit is False


def test_before_commit_sees_the_open_transaction_and_can_undo_it(setup, tmp_path, fresh_dsn):
    target, loaded, conn = setup
    seen = []

    def check(hook_conn, migration):
        seen.append((migration.name,
                     hook_conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0],
                     hook_conn.execute("SELECT count(*) FROM shipshape.history").fetchone()[0]))
        with psycopg.connect(fresh_dsn) as other:  # not committed yet
            seen.append(other.execute("SELECT to_regclass('items')").fetchone()[0])
        raise psycopg.errors.RaiseException("refused by the runtime guard")

    with pytest.raises(SQLFailed, match="0001_items.*refused by the runtime guard") as caught:
        migrations.apply(conn, target.env, loaded[0], applied_by="test", before_commit=check)
    assert caught.value.exit_code == 6
    assert seen == [("0001_items", "2s", 1), None]
    with psycopg.connect(fresh_dsn) as other:  # both rolled back
        assert other.execute("SELECT count(*) FROM shipshape.history").fetchone()[0] == 0
        assert other.execute("SELECT to_regclass('items')").fetchone()[0] is None

    trace = traced_apply(conn, target.env, loaded[0], tmp_path,
                         before_commit=lambda c, m: seen.append(m.name))
    assert round_trips(trace) == 2 and trace.rstrip().endswith("ReadyForQuery\t I")
    assert seen[-1] == "0001_items"
    with psycopg.connect(fresh_dsn) as other:
        assert other.execute("SELECT count(*) FROM shipshape.history").fetchone()[0] == 1


def test_inside_a_callers_transaction_it_is_a_savepoint(setup, tmp_path, fresh_dsn):
    target, loaded, conn = setup
    broken = write_migration(tmp_path / "sql", "0003_broken",
                             "CREATE TABLE gone (id int);\nSELECT nope FROM gone;\n", "SELECT 1;\n")
    [_, _, third] = migrations.load(tmp_path / "sql", target.env)
    conn.execute("SELECT 1")  # the caller's transaction is open
    migrations.apply(conn, target.env, loaded[0], applied_by="test")
    with pytest.raises(SQLFailed, match=f"{broken / 'migrate.sql.j2'} \\(rendered line 2\\)"):
        migrations.apply(conn, target.env, third, applied_by="test")
    with psycopg.connect(fresh_dsn) as other:  # nothing is committed before the caller does
        assert other.execute("SELECT to_regclass('items')").fetchone()[0] is None
    conn.commit()  # the first is kept, the failed one left nothing
    with psycopg.connect(fresh_dsn) as other:
        assert other.execute("SELECT name FROM shipshape.history").fetchall() == [("0001_items",)]
        assert other.execute("SELECT to_regclass('gone')").fetchone()[0] is None


def test_the_one_message_records_the_phase_and_the_accepted_lock(tmp_path, fresh_dsn, make_target):
    """The history row sent inline with the migration carries what the zero-downtime
    deploy reads back: the phase (the app's readiness) and the lock findings accepted."""
    target = make_target(fresh_dsn, lock_timeout="2s")
    root = small_tree(tmp_path / "sql")
    write_migration(root, "0003_price_positive",
                    "-- shipshape:phase contract\n"
                    "-- shipshape:lock-ok add-check-validating items is small everywhere\n"
                    "ALTER TABLE items ADD CONSTRAINT price_positive CHECK (price >= 0);\n",
                    "ALTER TABLE items DROP CONSTRAINT price_positive;\n")
    loaded = migrations.load(root, target.env)
    with db.connect(target) as conn:
        history.ensure_history(conn)
        migrations.apply(conn, target.env, loaded[0], applied_by="test")
        migrations.apply(conn, target.env, loaded[1], applied_by="test")
        trace = traced_apply(conn, target.env, loaded[2], tmp_path)
        assert round_trips(trace) == 1, trace
    with psycopg.connect(fresh_dsn) as other:
        assert other.execute("SELECT version, phase, lock_ok FROM shipshape.history "
                             "ORDER BY version").fetchall() == [
            (1, "expand", ""), (2, "expand", ""),
            (3, "contract", "add-check-validating: items is small everywhere")]


def test_a_watched_migration_is_one_message_its_check_before_its_commit(setup, tmp_path,
                                                                         fresh_dsn):
    """The runtime guard's check is the last statement of the migration's own message,
    after the history row and before COMMIT, so watching costs no exchange; its snapshot
    was read before, into a temporary table of the session, not in the user's schemas."""
    from shipshape.engine import guard

    target, loaded, conn = setup
    watcher = guard.Guard(conn)
    watcher.start(declared=False)  # the run's snapshot, read once before the first
    watcher.forget = lambda: None  # keep it: apply's own start() must not read again
    trace = traced_apply(conn, target.env, loaded[0], tmp_path, watcher=watcher)
    assert round_trips(trace) == 1, trace
    message = trace.split("\tQuery\t")[1]
    assert (message.index("INSERT INTO shipshape.history")
            < message.index("pg_temp.shipshape_guard_check()") < message.index("COMMIT;"))
    # the snapshot it updated: the table the migration created, for the next migration
    assert conn.execute("SELECT name, types[1:2] FROM pg_temp.shipshape_guard").fetchall() == [
        ("public.items", ["1:23:-1", "2:25:-1"])]
    conn.rollback()
    with psycopg.connect(fresh_dsn) as other:  # nothing of the guard in the database's schemas
        assert other.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                             "ON n.oid = c.relnamespace WHERE c.relname LIKE 'shipshape_guard%' "
                             "AND n.nspname NOT LIKE 'pg_temp%'").fetchone() == (0,)


def test_the_guard_refuses_from_the_rows_of_the_same_message(setup, tmp_path, fresh_dsn,
                                                             make_target):
    """A loss the text does not show (a function that deletes) is still refused, and the
    migration and its history row are rolled back."""
    from shipshape.engine import guard
    from shipshape.errors import Refused

    target, loaded, conn = setup
    migrations.apply(conn, target.env, loaded[0], applied_by="test")
    conn.execute("INSERT INTO items (name) VALUES ('apple')")
    conn.execute("CREATE FUNCTION wipe() RETURNS void LANGUAGE sql AS 'DELETE FROM items'")
    conn.commit()
    write_migration(tmp_path / "sql", "0003_wipe", "SELECT wipe();\n", "SELECT 1;\n")
    wipe = migrations.load(tmp_path / "sql", target.env)[-1]
    with pytest.raises(Refused) as refused:
        migrations.apply(conn, target.env, wipe, applied_by="test", watcher=guard.Guard(conn))
    assert refused.value.details == ["deleted 1 row(s) from table public.items"]
    with psycopg.connect(fresh_dsn) as other:
        assert other.execute("SELECT count(*) FROM items").fetchone()[0] == 1
        assert other.execute("SELECT count(*) FROM shipshape.history WHERE version = 3"
                             ).fetchone()[0] == 0


def test_a_watched_rollback_sends_the_guard_check_in_its_message(setup, tmp_path, fresh_dsn):
    """The rollback's check rides in its own message too (a watched rollback once broke
    when the migration's check changed alone)."""
    target, loaded, conn = setup
    write_migration(tmp_path / "sql", "0003_items_name", "CREATE INDEX items_name ON items (name);\n",
                    "DROP INDEX items_name;\n")  # not destructive: the guard watches it
    loaded = migrations.load(tmp_path / "sql", target.env)
    for migration in loaded:
        migrations.apply(conn, target.env, migration, applied_by="test")
    path = tmp_path / "trace.txt"
    with open(path, "w") as out:
        conn.pgconn.trace(out.fileno())
        try:
            migrations.rollback_one(conn, target.env, loaded[-1])
        finally:
            conn.pgconn.untrace()
    exchanges = path.read_text().split("ReadyForQuery")[:-1]
    [at] = [i for i, text in enumerate(exchanges) if "DROP INDEX items_name" in text]
    # the guard's check, in the rollback's own message, and its COMMIT after it there
    assert exchanges[at].index("shipshape_guard_check()") < exchanges[at].index("COMMIT;")
    assert len(exchanges) == at + 1, exchanges[at:]
    with psycopg.connect(fresh_dsn) as other:
        assert other.execute("SELECT to_regclass('items_name')").fetchone()[0] is None
        assert other.execute("SELECT max(version) FROM shipshape.history").fetchone()[0] == 2


def test_a_rollback_run_reads_the_guards_snapshot_once(setup, tmp_path, fresh_dsn):
    """db.rollback of several migrations keeps one snapshot for the run, as migrate does:
    read once, then kept true by each rollback's own check, which still refuses a loss in
    a later rollback of the run."""
    from shipshape.errors import Refused

    target, _, conn = setup
    tree = tmp_path / "sql"
    write_migration(tree, "0003_logs", "CREATE TABLE logs (id int);\n"
                    "INSERT INTO logs VALUES (1), (2);\n", "SELECT wipe_logs();\n")
    write_migration(tree, "0004_logs_idx", "CREATE INDEX logs_id ON logs (id);\n",
                    "DROP INDEX logs_id;\n")
    write_migration(tree, "0005_items_idx", "CREATE INDEX items_name ON items (name);\n",
                    "DROP INDEX items_name;\n")
    loaded = migrations.load(tree, target.env)
    for migration in loaded:
        migrations.apply(conn, target.env, migration, applied_by="test")
    conn.execute("CREATE FUNCTION wipe_logs() RETURNS void LANGUAGE sql AS 'DELETE FROM logs'")
    conn.commit()
    path = tmp_path / "trace.txt"
    with open(path, "w") as out:
        conn.pgconn.trace(out.fileno())
        try:
            with pytest.raises(Refused) as refused:
                migrations.rollback(conn, target.env, loaded, 2)
        finally:
            conn.pgconn.untrace()
    assert refused.value.details == ["deleted 2 row(s) from table public.logs"]
    assert "The rollback of 0003_logs" in refused.value.message
    trace = path.read_text()
    assert trace.count("DELETE FROM pg_temp.shipshape_guard;") == 1  # the snapshot, once
    assert trace.count("CREATE OR REPLACE PROCEDURE") == 1
    assert trace.count("CALL pg_temp.shipshape_guard_check()") == 3  # 0005, 0004, 0003
    with psycopg.connect(fresh_dsn) as other:
        assert other.execute("SELECT max(version) FROM shipshape.history").fetchone()[0] == 3
        assert other.execute("SELECT count(*) FROM logs").fetchone()[0] == 2
