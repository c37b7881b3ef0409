"""What the deploy lock and the timeouts leave behind: the lock is released when its block
ends (not when the connection closes), the retries back off doubling, and a migration's
timeouts are its transaction's only (SET LOCAL), not the session's.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import psycopg
import pytest

from shipshape import db
from shipshape.db import timeouts
from shipshape.engine import migrations
from shipshape.errors import Busy
from tests.treeutil import small_tree, write_migration


def test_the_lock_is_released_when_its_block_ends(fresh_dsn, make_target):
    target = make_target(fresh_dsn)
    first = db.connect(target, purpose="first")
    second = db.connect(target, purpose="second")
    try:
        with db.advisory_lock(first, "1s"), pytest.raises(Busy), \
                db.advisory_lock(second, "100ms"):
            pass
        # `first` is still open, and holds nothing any more
        assert db.lock_holders(second) == []
        with db.advisory_lock(second, "100ms"):
            assert [h["pid"] for h in db.lock_holders(first)] == [second.info.backend_pid]
    finally:
        first.close()
        second.close()


def test_retries_back_off_doubling(tmp_path, fresh_dsn, make_target, monkeypatch):
    tree = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn, lock_timeout="50ms", lock_retries="3",
                         lock_retry_backoff="40ms")
    loaded = migrations.load(tree, target.env)
    slept = []
    monkeypatch.setattr(timeouts, "time", SimpleNamespace(
        monotonic=time.monotonic, sleep=lambda s: slept.append(s) or time.sleep(s)))
    with db.connect(target) as conn:
        migrations.migrate(conn, target.env, loaded, to=1)
        blocker = psycopg.connect(fresh_dsn)
        blocker.execute("LOCK TABLE items IN ACCESS SHARE MODE")
        try:
            with pytest.raises(Busy, match="4 attempts"):
                migrations.migrate(conn, target.env, loaded)
        finally:
            blocker.close()
    assert slept == pytest.approx([0.04, 0.08, 0.16])


@pytest.mark.parametrize("transactional", [True, False])
def test_a_migration_s_timeouts_do_not_outlive_it(tmp_path, fresh_dsn, make_target,
                                                   transactional):
    tree = small_tree(tmp_path / "sql")
    if not transactional:
        write_migration(tree, "0003_index",
                        "-- shipshape:no-transaction\n"
                        "CREATE INDEX CONCURRENTLY items_price_idx ON items (price);\n",
                        "DROP INDEX IF EXISTS items_price_idx;\n")
    target = make_target(fresh_dsn, lock_timeout="1234ms", statement_timeout="4321ms")
    loaded = migrations.load(tree, target.env)
    with db.connect(target) as conn:
        defaults = [conn.execute(f"SHOW {s}").fetchone()[0]
                    for s in ("lock_timeout", "statement_timeout")]
        conn.rollback()
        migrations.migrate(conn, target.env, loaded)
        after = [conn.execute(f"SHOW {s}").fetchone()[0]
                 for s in ("lock_timeout", "statement_timeout")]
    assert after == defaults and "1234ms" not in after
