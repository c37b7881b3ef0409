"""Batched backfills (`-- shipshape:backfill`): batches of N rows, each its own
transaction, resumable after a kill, with progress; bad declarations are bad input."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from tests.conftest import ROOT, run_invoke
from tests.treeutil import write_migration

ROWS = 10_000
BACKFILL = ("-- shipshape:backfill\n"
            "UPDATE items SET doubled = n * 2 WHERE id IN (SELECT id FROM items "
            "WHERE doubled IS NULL ORDER BY id LIMIT {{ env.backfill_batch_size }});\n")


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "sql"
    (root / "seeds").mkdir(parents=True)
    (root / "checks").mkdir()
    write_migration(root, "0001_items", "CREATE TABLE items (id bigint PRIMARY KEY, n integer);\n",
                    "-- shipshape:destructive\nDROP TABLE items;\n")
    write_migration(root, "0002_doubled", "ALTER TABLE items ADD COLUMN doubled integer;\n",
                    "-- shipshape:destructive\nALTER TABLE items DROP COLUMN doubled;\n")
    write_migration(root, "0003_fill_doubled", BACKFILL,
                    "UPDATE items SET doubled = NULL;\n")
    return root


@pytest.fixture
def state(tmp_path):
    return {"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")}


def deploy_args(dsn, tree, *extra):
    return ("deploy", "--env", "dev", "--dsn", dsn, "--sql-dir", str(tree), *extra)


def prepared(dsn, tree, state):
    """0001 and 0002 applied (0003 set aside), then ROWS rows to backfill."""
    aside = tree.parent / "aside"
    (tree / "migrations" / "0003_fill_doubled").rename(aside)
    assert run_invoke(*deploy_args(dsn, tree), env=state).returncode == 0
    aside.rename(tree / "migrations" / "0003_fill_doubled")
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO items (id, n) SELECT g, g FROM generate_series(1, %s) g", [ROWS])


def fetch(dsn, query):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def test_a_backfill_runs_in_batches_each_its_own_transaction(fresh_dsn, tree, state):
    prepared(fresh_dsn, tree, state)
    result = run_invoke(*deploy_args(fresh_dsn, tree, "--set", "backfill_batch_size=1000"),
                        env=state)
    assert result.returncode == 0, result.stdout + result.stderr
    assert fetch(fresh_dsn, "SELECT count(*) FROM items WHERE doubled = n * 2") == [(ROWS,)]
    # one transaction per batch: the rows of each batch carry that transaction's id
    assert fetch(fresh_dsn, "SELECT count(DISTINCT xmin::text) FROM items") == [(10,)]
    assert "batch 10: 10000 rows" in result.stdout + result.stderr, result.stderr
    assert fetch(fresh_dsn, "SELECT version FROM shipshape.history ORDER BY 1") == [(1,), (2,), (3,)]


def test_a_killed_backfill_resumes_where_it_stopped(fresh_dsn, tree, state):
    prepared(fresh_dsn, tree, state)
    # Another session holds row 5000: the batch that reaches it waits, the ones before
    # it are committed; the deploy is killed while it waits.
    holder = psycopg.connect(fresh_dsn)
    holder.execute("SELECT * FROM items WHERE id = 5000 FOR UPDATE")
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | state
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT),
         *deploy_args(fresh_dsn, tree, "--set", "backfill_batch_size=100", "--set",
                      "lock_timeout=0")],
        cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        waiting = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                   "AND query LIKE '%UPDATE items SET doubled%'")
        while fetch(fresh_dsn, waiting) != [(1,)]:
            assert process.poll() is None, "the deploy ended before it reached the held row"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        holder.close()
    done = fetch(fresh_dsn, "SELECT count(*) FROM items WHERE doubled IS NOT NULL")[0][0]
    assert done == 4900  # 49 committed batches of 100; the 50th died with the process
    assert fetch(fresh_dsn, "SELECT count(*) FROM shipshape.history WHERE version = 3") == [(0,)]
    first = fetch(fresh_dsn, "SELECT count(DISTINCT xmin::text) FROM items WHERE id <= 4900")
    resumed = run_invoke(*deploy_args(fresh_dsn, tree, "--set", "backfill_batch_size=100"),
                         env=state)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert fetch(fresh_dsn, "SELECT count(*) FROM items WHERE doubled = n * 2") == [(ROWS,)]
    # the committed batches were not redone
    assert fetch(fresh_dsn, "SELECT count(DISTINCT xmin::text) FROM items WHERE id <= 4900") == first


@pytest.mark.parametrize("body, says", [
    ("-- shipshape:backfill\nUPDATE items SET doubled = n * 2 WHERE doubled IS NULL;\n",
     "select its rows with a LIMIT"),
    (("-- shipshape:backfill\nALTER TABLE items ADD COLUMN x int;\nUPDATE items SET x = 1 "
      "WHERE id IN (SELECT id FROM items LIMIT 5);\n"), "is one UPDATE, DELETE or INSERT"),
])
def test_a_bad_backfill_is_bad_input(fresh_dsn, tree, state, body, says):
    write_migration(tree, "0003_fill_doubled", body, "SELECT 1;\n")
    result = run_invoke(*deploy_args(fresh_dsn, tree), env=state)
    assert result.returncode == 5
    message = " ".join(result.stderr.split())
    assert says in message and "0003_fill_doubled" in message
    assert fetch(fresh_dsn, "SELECT to_regclass('items')") == [(None,)]  # nothing ran


def test_a_backfill_that_never_finishes_is_stopped(fresh_dsn, tree, state):
    write_migration(tree, "0003_fill_doubled",
                    "-- shipshape:backfill\nUPDATE items SET doubled = n * 2 WHERE id IN "
                    "(SELECT id FROM items ORDER BY id LIMIT 10);\n", "SELECT 1;\n")
    prepared(fresh_dsn, tree, state)
    result = run_invoke(*deploy_args(fresh_dsn, tree), env=state)
    assert result.returncode == 6
    assert "keeps matching rows it has done" in " ".join(result.stderr.split())
    assert fetch(fresh_dsn, "SELECT count(*) FROM shipshape.history WHERE version = 3") == [(0,)]


# --- the psql-only script (`invoke render`) ----------------------------------------------

def rendered_migrate(dsn, tree, out, state, *settings):
    sets = [arg for setting in settings for arg in ("--set", setting)]
    result = run_invoke("render", "--env", "dev", "--dsn", dsn, "--sql-dir", str(tree),
                        "--out", str(out), *sets, env=state)
    assert result.returncode == 0, result.stderr
    return out / "migrate.sql"


def psql(dsn, path) -> subprocess.CompletedProcess:
    """As a DBA runs it: plain psql, stop at the first error."""
    return subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(path)],
                          capture_output=True, text=True, timeout=240, check=False)


@pytest.mark.skipif(shutil.which("psql") is None, reason="needs the psql client")
def test_the_psql_script_runs_every_batch_and_records_the_backfill_once(fresh_dsn, tree, state,
                                                                       tmp_path):
    prepared(fresh_dsn, tree, state)
    script = rendered_migrate(fresh_dsn, tree, tmp_path / "out", state, "backfill_batch_size=1000")
    result = psql(fresh_dsn, script)
    assert result.returncode == 0, result.stdout + result.stderr
    assert fetch(fresh_dsn, "SELECT count(*) FROM items WHERE doubled = n * 2") == [(ROWS,)]
    # a transaction per batch, as `invoke deploy` runs it: 10 batches of 1000 rows
    assert fetch(fresh_dsn, "SELECT count(DISTINCT xmin::text) FROM items") == [(10,)]
    assert "0003_fill_doubled: batch 1: 1000 rows" in result.stderr
    assert "0003_fill_doubled: batch 10: 10000 rows" in result.stderr
    assert "batch 11" not in result.stderr
    assert fetch(fresh_dsn, "SELECT version, success, applied_by LIKE 'psql:%' FROM "
                            "shipshape.history WHERE version = 3") == [(3, True, True)]
    # nothing left for the engine: the same history as `invoke deploy` would write
    status = run_invoke("db.status", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree),
                        env=state)
    assert status.returncode == 0, status.stdout + status.stderr
    again = psql(fresh_dsn, script)  # applied: skipped, no second row
    assert again.returncode == 0 and "batch" not in again.stderr
    assert fetch(fresh_dsn, "SELECT count(*) FROM shipshape.history WHERE version = 3") == [(1,)]


@pytest.mark.skipif(shutil.which("psql") is None, reason="needs the psql client")
def test_the_psql_script_resumes_a_backfill_that_stopped(fresh_dsn, tree, state, tmp_path):
    prepared(fresh_dsn, tree, state)
    script = rendered_migrate(fresh_dsn, tree, tmp_path / "out", state,
                              "backfill_batch_size=1000", "lock_timeout=100ms")
    # Another session holds row 5500: the sixth batch times out on its lock, the five
    # before it are committed, the script stops, the migration stays pending.
    with psycopg.connect(fresh_dsn) as holder:
        holder.execute("SELECT * FROM items WHERE id = 5500 FOR UPDATE")
        stopped = psql(fresh_dsn, script)
    assert stopped.returncode != 0 and "lock timeout" in stopped.stderr
    assert fetch(fresh_dsn, "SELECT count(*) FROM items WHERE doubled IS NOT NULL") == [(5000,)]
    assert fetch(fresh_dsn, "SELECT count(*) FROM shipshape.history WHERE version = 3") == [(0,)]
    first = fetch(fresh_dsn, "SELECT count(DISTINCT xmin::text) FROM items WHERE id <= 5000")
    resumed = psql(fresh_dsn, script)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert fetch(fresh_dsn, "SELECT count(*) FROM items WHERE doubled = n * 2") == [(ROWS,)]
    assert fetch(fresh_dsn, "SELECT count(DISTINCT xmin::text) FROM items WHERE id <= 5000") == first
    assert "batch 5: 5000 rows" in resumed.stderr  # the 5 batches left, counted from here
    assert fetch(fresh_dsn, "SELECT count(*) FROM shipshape.history WHERE version = 3") == [(1,)]
