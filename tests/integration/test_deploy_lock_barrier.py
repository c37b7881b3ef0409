"""The deploy's advisory lock, held by a second connection at a barrier: deterministic,
where eight concurrent deploys only notice a missing lock when the race goes wrong.

The holder takes the lock with plain pg_advisory_lock and the key derived here from
the lock's name, as documented in shipshape/db/locks.py (sha256 of "shipshape:migrate",
two 31-bit halves): a deploy that used another key, or no lock, would not queue.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import psycopg
import pytest

from shipshape.db import locks
from tests.conftest import ROOT, run_invoke
from tests.treeutil import small_tree


def lock_key(name: str = "shipshape:migrate") -> tuple[int, int]:
    digest = hashlib.sha256(name.encode()).digest()
    return (int.from_bytes(digest[:4], "big") & 0x7FFFFFFF,
            int.from_bytes(digest[4:8], "big") & 0x7FFFFFFF)


def test_the_key_is_the_documented_one():
    assert locks.MIGRATION_LOCK == "shipshape:migrate"
    assert locks._lock_key(locks.MIGRATION_LOCK) == lock_key()


@pytest.fixture
def tree(tmp_path):
    return small_tree(tmp_path / "sql")


@pytest.fixture
def holder(fresh_dsn):
    """A second connection holding the deploy lock, as another deploy would."""
    conn = psycopg.connect(fresh_dsn, autocommit=True, application_name="deploy by alice")
    conn.execute("SELECT pg_advisory_lock(%s, %s)", lock_key())
    yield conn
    conn.close()


def fetch(dsn, query, params=None):
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def applied(dsn) -> list:
    if fetch(dsn, "SELECT to_regclass('shipshape.history')") == [(None,)]:
        return []
    return [v for (v,) in fetch(dsn, "SELECT version FROM shipshape.history ORDER BY 1")]


def test_a_deploy_waits_for_the_holder_then_gives_up_naming_it(fresh_dsn, tree, state, holder):
    result = run_invoke("deploy", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree),
                        "--set", "migration_lock_wait=300ms", env=state)
    assert result.returncode == 4, result.stdout + result.stderr
    text = " ".join(result.stderr.split())
    assert f"pid {holder.info.backend_pid}" in text and "'deploy by alice'" in text
    assert "gave up after 300ms" in text
    assert applied(fresh_dsn) == []
    assert fetch(fresh_dsn, "SELECT to_regclass('items')") == [(None,)]


def test_a_queued_deploy_proceeds_once_the_holder_releases(fresh_dsn, tree, state, holder):
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | state
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "deploy", "--env", "dev",
         "--dsn", fresh_dsn, "--sql-dir", str(tree), "--set", "migration_lock_wait=120s"],
        cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the barrier: the deploy's session is asking for the lock (it polls with
        # pg_try_advisory_lock outside a transaction, so between polls that is its last
        # statement), and has changed nothing
        deadline = time.monotonic() + 120
        while not fetch(fresh_dsn, "SELECT 1 FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                                   "AND application_name LIKE 'shipshape deploy%%' "
                                   "AND query LIKE '%%pg_try_advisory_lock%%'"):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the deploy never asked for the lock"
            time.sleep(0.05)
        time.sleep(0.3)  # several more polls: still queued
        assert process.poll() is None, process.communicate()
        assert applied(fresh_dsn) == []
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", lock_key())
        out, err = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, out + err
    assert applied(fresh_dsn) == [1, 2]
