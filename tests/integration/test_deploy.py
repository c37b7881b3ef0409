"""`invoke deploy` as an operator runs it: gates, exit codes, messages, no secrets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.conftest import ROOT, run_invoke
from tests.treeutil import small_tree, write_migration


@pytest.fixture
def tree(tmp_path):
    return small_tree(tmp_path / "sql")


def deploy(dsn, tree, state, *extra, env="dev"):
    return run_invoke("deploy", "--env", env, "--dsn", dsn, "--sql-dir", str(tree), *extra, env=state)


def fetch(dsn, query):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchall()


def test_deploy_runs_every_gate_and_records_it(fresh_dsn, tree, state):
    result = deploy(fresh_dsn, tree, state)
    assert result.returncode == 0, result.stderr
    for gate in ("preflight", "lock", "migrate", "seed", "verify", "record"):
        assert gate in result.stdout
    assert "0000 -> 0002" in result.stdout
    assert fetch(fresh_dsn, "SELECT name, price FROM items ORDER BY name") == [("apple", 3), ("pear", 5)]
    rows = fetch(fresh_dsn, "SELECT env, from_version, to_version, result, exit_code FROM shipshape.deployments")
    assert rows == [("dev", None, 2, "ok", 0)]
    again = deploy(fresh_dsn, tree, state)
    assert again.returncode == 0 and "nothing to apply" in again.stdout


def test_deploy_json_reports_gates(fresh_dsn, tree, state):
    import json

    result = deploy(fresh_dsn, tree, state, "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [g["name"] for g in document["gates"]][:5] == ["preflight", "lock", "migrate", "seed", "verify"]
    assert document["to_version"] == 2 and document["exit_code"] == 0


def test_unknown_env_exit_5_lists_envs(fresh_dsn, tree, state):
    result = deploy(fresh_dsn, tree, state, env="production")
    assert result.returncode == 5
    assert "Known environments: local, dev, staging, prod" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_database_exit_5_without_password(tree, state):
    dsn = "postgresql://app:Pa55-unreachable-secret@127.0.0.1:1/avatar"
    result = deploy(dsn, tree, state)
    assert result.returncode == 5
    assert "Cannot connect" in result.stderr
    assert "Pa55-unreachable-secret" not in result.stdout + result.stderr


def test_password_never_printed_on_success_or_failure(fresh_dsn, tree, state):
    # Trust auth ignores the password, so this DSN connects; it must still never show.
    secret_dsn = fresh_dsn + " password=Sup3r-Secret-pw"
    ok = deploy(secret_dsn, tree, state)
    write_migration(tree, "0003_broken", "SELECT nope;", "SELECT 1;")
    failed = deploy(secret_dsn, tree, state)
    assert ok.returncode == 0 and failed.returncode == 6
    for result in (ok, failed):
        assert "Sup3r-Secret-pw" not in result.stdout + result.stderr
    assert "***" in ok.stdout + ok.stderr
    detail = fetch(fresh_dsn, "SELECT detail::text FROM shipshape.deployments")
    assert all("Sup3r-Secret-pw" not in d for (d,) in detail)


def test_template_error_exit_5_names_file_and_line(fresh_dsn, tree, state):
    write_migration(tree, "0003_bad", "SELECT 1;\nGRANT SELECT ON items TO {{ env.app_rol }};\n", "SELECT 1;")
    result = deploy(fresh_dsn, tree, state)
    assert result.returncode == 5
    assert "0003_bad/migrate.sql.j2:2" in result.stderr
    assert fetch(fresh_dsn, "SELECT to_regclass('shipshape.history')::text") == [(None,)]
    # the table says why nothing was recorded: not a database that was never asked
    assert "database not reachable" not in result.stdout
    # the template is rendered once connected (only pending ones are): a first deploy
    # has no history to record in
    assert "nothing recorded before the history existed" in result.stdout


def test_sql_error_exit_6_and_the_deploy_is_recorded_as_failed(fresh_dsn, tree, state):
    write_migration(tree, "0003_broken", "ALTER TABLE items ADD COLUMN x int;\nSELECT nope;\n",
                    "-- shipshape:destructive\nALTER TABLE items DROP COLUMN x;")
    result = deploy(fresh_dsn, tree, state)
    assert result.returncode == 6
    assert "0003_broken" in result.stderr and "rendered line 2" in result.stderr
    assert "✗ failed" in result.stdout  # the summary still shows where it stopped
    assert fetch(fresh_dsn, "SELECT max(version) FROM shipshape.history") == [(2,)]
    assert fetch(fresh_dsn, "SELECT result, exit_code FROM shipshape.deployments") == [("failed at migrate", 6)]
    cols = fetch(fresh_dsn, "SELECT column_name FROM information_schema.columns WHERE table_name='items'")
    assert ("x",) not in cols


def test_verify_gate_exit_2_on_drift_and_seed_loss(fresh_dsn, tree, state):
    assert deploy(fresh_dsn, tree, state).returncode == 0
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE INDEX by_hand ON items (price)")
    result = run_invoke("db.verify", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree), env=state)
    assert result.returncode == 2
    assert "DRIFT_UNEXPECTED" in result.stdout and "by_hand" in result.stdout
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX by_hand")
        conn.execute("DELETE FROM items WHERE name = 'pear'")
        conn.execute("UPDATE items SET price = -1 WHERE name = 'apple'")
    result = run_invoke("db.verify", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree),
                        "--json", env=state)
    assert result.returncode == 2
    import json

    codes = {f["code"] for f in json.loads(result.stdout)["findings"]}
    assert {"SEED_MISSING", "CHECK_FAILED"} <= codes or {"SEED_DIFFERS", "CHECK_FAILED"} <= codes
    assert deploy(fresh_dsn, tree, state).returncode == 0  # the seed gate repairs it


def test_dry_run_prints_sql_and_touches_nothing(fresh_dsn, tree, state):
    result = deploy(fresh_dsn, tree, state, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE items" in result.stdout and "ALTER TABLE items ADD COLUMN price" in result.stdout
    assert "INSERT INTO" in result.stdout and "negative_price" in result.stdout
    assert fetch(fresh_dsn, "SELECT count(*) FROM pg_namespace WHERE nspname = 'shipshape'") == [(0,)]
    assert fetch(fresh_dsn, "SELECT to_regclass('items')::text") == [(None,)]


def test_status_lists_each_state(fresh_dsn, tree, state):
    assert deploy(fresh_dsn, tree, state).returncode == 0
    write_migration(tree, "0003_more", "ALTER TABLE items ADD COLUMN note text;",
                    "-- shipshape:destructive\nALTER TABLE items DROP COLUMN note;")
    result = run_invoke("db.status", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree), env=state)
    assert result.returncode == 2
    assert "applied" in result.stdout and "pending" in result.stdout


def test_rollback_needs_yes_outside_local(fresh_dsn, tree, state):
    assert deploy(fresh_dsn, tree, state).returncode == 0
    args = ("db.rollback", "--to", "1", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree))
    refused = run_invoke(*args, env=state)
    assert refused.returncode == 3 and "--yes" in refused.stderr
    dry = run_invoke(*args, "--dry-run", env=state)
    assert dry.returncode == 0 and "DROP COLUMN price" in dry.stdout
    done = run_invoke(*args, "--yes", env=state)
    assert done.returncode == 0, done.stderr
    assert fetch(fresh_dsn, "SELECT max(version) FROM shipshape.history") == [(1,)]


@pytest.mark.slow
def test_eight_concurrent_deploys_apply_each_migration_once(fresh_dsn, tree, state):
    for n in range(3, 9):
        write_migration(tree, f"{n:04d}_step_{n}", f"CREATE TABLE step_{n} (id int);",
                        f"-- shipshape:destructive\nDROP TABLE step_{n};")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: deploy(fresh_dsn, tree, state), range(8)))
    assert [r.returncode for r in results] == [0] * 8, [r.stderr for r in results if r.returncode]
    assert fetch(fresh_dsn, "SELECT version, count(*) FROM shipshape.history GROUP BY 1 ORDER BY 1") == \
        [(v, 1) for v in range(1, 9)]
    assert fetch(fresh_dsn, "SELECT count(*) FROM shipshape.deployments WHERE result = 'ok'") == [(8,)]
    applied = sum("nothing to apply" not in r.stdout for r in results)
    assert applied == 1  # one deploy did the work, seven found nothing to do


@pytest.mark.slow
def test_deploy_killed_mid_migration_leaves_nothing_and_next_deploy_succeeds(fresh_dsn, tree, state):
    # Slow on the target only: deploy's preflight first runs every migration in the
    # shadow (to rehearse the seeds), where it must not be the one killed.
    slow = write_migration(tree, "0003_slow",
                           "CREATE TABLE half_done (id int);\nSELECT pg_sleep(CASE WHEN "
                           "current_database() LIKE 'shipshape%' THEN 0 ELSE 60 END);\n",
                           "-- shipshape:destructive\nDROP TABLE half_done;")
    sleeping = ("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(CASE%' "
                "AND datname = current_database() AND pid <> pg_backend_pid()")
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | state
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "deploy", "--env", "dev",
         "--dsn", fresh_dsn, "--sql-dir", str(tree)],
        cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if fetch(fresh_dsn, sleeping)[0][0]:
            break
        time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("the slow migration never started")
    process.send_signal(signal.SIGKILL)
    process.wait()
    # The server notices the dead client (client_connection_check_interval) and rolls back.
    deadline = time.monotonic() + 30
    while fetch(fresh_dsn, sleeping)[0][0] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fetch(fresh_dsn, "SELECT to_regclass('half_done')::text") == [(None,)]
    assert fetch(fresh_dsn, "SELECT max(version) FROM shipshape.history") == [(2,)]
    (slow / "migrate.sql.j2").write_text("CREATE TABLE half_done (id int);\n")
    result = deploy(fresh_dsn, tree, state)
    assert result.returncode == 0, result.stderr
    assert fetch(fresh_dsn, "SELECT max(version) FROM shipshape.history") == [(3,)]


def test_bad_seed_file_exit_5_names_file_and_field(fresh_dsn, tree, state):
    (tree / "seeds" / "broken.yaml").write_text("table: items\nkey: [name]\nset: reference\nrows:\n  - {price: 1}\n")
    result = deploy(fresh_dsn, tree, state)
    assert result.returncode == 5
    assert "broken.yaml" in result.stderr and "rows[0]" in result.stderr
    assert fetch(fresh_dsn, "SELECT to_regclass('items')::text") == [(None,)]  # preflight stopped it


def test_missing_sql_dir_exit_5(fresh_dsn, tmp_path, state):
    result = deploy(fresh_dsn, tmp_path / "nowhere", state)
    assert result.returncode == 5 and "nowhere" in result.stderr


def test_baseline_task_refuses_with_differences_exit_3(fresh_dsn, tree, state):
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL UNIQUE)")
    args = ("db.baseline", "--version", "2", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree))
    refused = run_invoke(*args, env=state)
    assert refused.returncode == 3
    assert "items.price" in refused.stderr
    # a dry run proves the same and records nothing: no history table, no row
    dry = run_invoke("db.baseline", "--version", "1", "--env", "dev", "--dsn", fresh_dsn,
                     "--sql-dir", str(tree), "--dry-run", env=state)
    assert dry.returncode == 0, dry.stderr
    assert "nothing was recorded" in dry.stdout and "INSERT INTO shipshape.history" in dry.stdout
    assert fetch(fresh_dsn, "SELECT to_regclass('shipshape.history')::text") == [(None,)]
    dry_refused = run_invoke(*args, "--dry-run", env=state)
    assert dry_refused.returncode == 3 and "items.price" in dry_refused.stderr
    adopted = run_invoke("db.baseline", "--version", "1", "--env", "dev", "--dsn", fresh_dsn,
                         "--sql-dir", str(tree), env=state)
    assert adopted.returncode == 0, adopted.stderr
    assert deploy(fresh_dsn, tree, state).returncode == 0
    assert fetch(fresh_dsn, "SELECT version, applied_by LIKE 'baseline%' FROM shipshape.history ORDER BY 1") == \
        [(1, True), (2, False)]


def test_seed_task_restores_rows_and_its_dry_run_needs_no_database(fresh_dsn, tree, state):
    assert deploy(fresh_dsn, tree, state).returncode == 0
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM items WHERE name = 'pear'")
    dry = run_invoke("db.seed", "--env", "prod", "--sql-dir", str(tree), "--dry-run", env=state)
    assert dry.returncode == 0, dry.stderr
    assert "INSERT INTO" in dry.stdout and "'pear'" in dry.stdout
    assert fetch(fresh_dsn, "SELECT count(*) FROM items") == [(1,)]  # the dry run changed nothing
    done = run_invoke("db.seed", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree), env=state)
    assert done.returncode == 0, done.stderr
    assert fetch(fresh_dsn, "SELECT name, price FROM items ORDER BY name") == [("apple", 3), ("pear", 5)]
