"""engine.history, the one writer of shipshape.history: the engine, the psql script that
`render` writes and a runbook's plan all record the same row with the same statement."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

import psycopg
import pytest

from shipshape import db
from shipshape.engine import bundle, history, migrations
from shipshape.engine.render import Renderer
from tests.conftest import create_database, drop_database, dsn_for
from tests.treeutil import small_tree

FIELDS = ("version", "name", "checksum", "source_checksum", "success")


@dataclass(frozen=True)
class Stale:
    """A migration as an earlier, failed attempt recorded it: another name, other files."""

    version: int
    name: str = "0001_items_draft"
    checksum: str = "0" * 64
    source_checksum: str = "f" * 64


def rows(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT {', '.join(FIELDS)}, applied_by FROM shipshape.history "
                            f"ORDER BY version").fetchall()


def dirty(target) -> None:
    """The history a failed, non-transactional first attempt of 0001 leaves: success false."""
    with db.connect(target) as conn:
        history.ensure_history(conn)
        with conn.transaction():
            history.record(conn, Stale(1), applied_by="an earlier deploy", duration_ms=7,
                           success=False)


@pytest.fixture
def second_dsn(admin_dsn):
    name = create_database(admin_dsn)
    yield dsn_for(admin_dsn, name)
    drop_database(admin_dsn, name)


@pytest.mark.skipif(shutil.which("psql") is None, reason="needs the psql client")
def test_psql_script_records_over_a_dirty_row_what_the_engine_records(
        tmp_path, fresh_dsn, second_dsn, make_target):
    tree = small_tree(tmp_path / "sql")
    by_engine, by_psql = make_target(fresh_dsn), make_target(second_dsn)
    env = by_engine.env
    renderer = Renderer(tree, env)
    loaded = migrations.load(tree, env, renderer)
    for target in (by_engine, by_psql):
        dirty(target)
    assert rows(fresh_dsn) == rows(second_dsn) == [
        (1, "0001_items_draft", "0" * 64, "f" * 64, False, "an earlier deploy")]

    with db.connect(by_engine) as conn, db.advisory_lock(conn, env.migration_lock_wait):
        migrations.migrate(conn, env, loaded, retry_failed=True)
    script = tmp_path / "migrate.sql"
    script.write_text(bundle.migrate_script(renderer, loaded))
    applied = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", second_dsn,
                              "-f", str(script)], capture_output=True, text=True, timeout=120,
                             check=False)
    assert applied.returncode == 0, applied.stderr

    engine_rows, psql_rows = rows(fresh_dsn), rows(second_dsn)
    assert [r[:-1] for r in psql_rows] == [r[:-1] for r in engine_rows] == [
        (m.version, m.name, m.checksum, m.source_checksum, True) for m in loaded]
    # who applied it is the one field that says which client ran it
    assert all(r[-1] == db.operator() for r in engine_rows)
    assert all(r[-1].startswith("psql:") for r in psql_rows)
    with db.connect(by_psql) as conn:
        entries = migrations.status(loaded, history.read_history(conn))
    assert {e.state for e in entries} == {"applied"}


def test_a_plan_shows_the_statement_record_runs(fresh_dsn, make_target):
    target = make_target(fresh_dsn)
    migration = Stale(3, name="0003_x", checksum="a" * 64, source_checksum="b" * 64)
    with db.connect(target) as conn:
        history.ensure_history(conn)
        shown = history.record_sql(conn, migration, applied_by="baseline by runbook x")
        with conn.transaction():
            conn.execute(shown)
        planned = history.read_history(conn)[3]
        with conn.transaction():
            history.delete(conn, 3)
            history.record(conn, migration, applied_by="baseline by runbook x")
        recorded = history.read_history(conn)[3]
    assert "INSERT INTO shipshape.history" in shown and "'0003_x'" in shown
    assert ({k: planned[k] for k in (*FIELDS, "applied_by", "duration_ms")}
            == {k: recorded[k] for k in (*FIELDS, "applied_by", "duration_ms")})
    # what a runbook plans against: the row as read_history returns it, but for its time
    projected = history.projected(migration, applied_by="baseline by runbook x")
    assert list(projected) == list(recorded)
    assert {**projected, "applied_at": None} == {**recorded, "applied_at": None}


def test_the_scripts_use_the_history_statements(tmp_path, make_target):
    tree = small_tree(tmp_path / "sql")
    env = make_target("dbname=unused").env
    renderer = Renderer(tree, env)
    loaded = migrations.load(tree, env, renderer)
    migrate_sql = bundle.migrate_script(renderer, loaded)
    rollback_sql = bundle.rollback_script(renderer, loaded)
    for m in loaded:
        assert history.record_script(m) + ";" in migrate_sql
        assert history.delete_script(m) + ";" in rollback_sql
    assert migrate_sql.count("INSERT INTO shipshape.history") == len(loaded)
    assert rollback_sql.count("DELETE FROM shipshape.history") == len(loaded)
