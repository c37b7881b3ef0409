"""The lock-timeout retry, counted and timed by the server, not by sleeping and hoping.

Each attempt of the migration first takes a number from a sequence of the test's own
(nextval survives the rollback of the attempt), then waits for its table lock. So the
sequence counts the attempts really made, and it is the barrier for releasing the lock:
after the first attempt has timed out, inside the retry window.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from shipshape import db
from shipshape.engine import migrations
from shipshape.errors import Busy
from tests.treeutil import small_tree, write_migration


def counted_tree(root):
    """The small tree, its 0002 counting its attempts in the sequence `attempts`."""
    tree = small_tree(root)
    write_migration(tree, "0002_item_price",
                    "SELECT nextval('attempts');\n"
                    "ALTER TABLE items ADD COLUMN price integer NOT NULL DEFAULT 0;\n",
                    "-- shipshape:destructive\nALTER TABLE items DROP COLUMN price;\n")
    return tree


def migrate(target, tree, **kw):
    loaded = migrations.load(tree, target.env)
    with db.connect(target) as conn, db.advisory_lock(conn, target.env.migration_lock_wait):
        return migrations.migrate(conn, target.env, loaded, **kw)


def attempts(conn) -> int:
    last_value, is_called = conn.execute("SELECT last_value, is_called FROM attempts").fetchone()
    return last_value if is_called else 0


def waiting_on_items(conn, blocker_pid: int) -> bool:
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND relation = 'items'::regclass "
        "AND pid <> %s)", [blocker_pid]).fetchone()[0]


def columns(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'items'::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum")]


@pytest.fixture
def blocked(tmp_path, fresh_dsn, make_target):
    """0001 applied, the `attempts` sequence, and a long transaction holding a lock on
    items that 0002's ALTER TABLE must wait for. Yields (tree, blocker, watcher)."""
    tree = counted_tree(tmp_path / "sql")
    migrate(make_target(fresh_dsn), tree, to=1)
    watcher = psycopg.connect(fresh_dsn, autocommit=True)
    watcher.execute("CREATE SEQUENCE attempts")
    blocker = psycopg.connect(fresh_dsn, application_name="long report")
    blocker.execute("LOCK TABLE items IN ACCESS SHARE MODE")
    yield tree, blocker, watcher
    blocker.close()
    watcher.close()


def test_a_lock_released_inside_the_retry_window_lets_the_migration_through(
        blocked, fresh_dsn, make_target):
    tree, blocker, watcher = blocked
    target = make_target(fresh_dsn, lock_timeout="200ms", lock_retries="3",
                         lock_retry_backoff="300ms")
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(migrate, target, tree)
        # the barrier: the first attempt was seen waiting for the lock, and then no longer
        # waiting (it timed out: the engine is in its backoff, or gave up) or a second
        # attempt has begun
        pid, deadline, seen = blocker.info.backend_pid, time.monotonic() + 60, None
        while not running.done():
            assert time.monotonic() < deadline, "no attempt ever timed out"
            made = attempts(watcher)
            waiting = waiting_on_items(watcher, pid)
            if seen is None and waiting and made:
                seen = made  # an attempt (this one or an earlier) is waiting
            elif seen is not None and (not waiting or attempts(watcher) > seen):
                break
            time.sleep(0.005)
        blocker.close()  # released inside the retry window
        _, applied = running.result(timeout=60)
    assert [m.name for m in applied] == ["0002_item_price"]
    assert columns(watcher) == ["id", "name", "price"]
    assert attempts(watcher) >= 2  # it did have to retry
    assert watcher.execute("SELECT version, success FROM shipshape.history ORDER BY 1").fetchall() \
        == [(1, True), (2, True)]


@pytest.mark.parametrize("retries", [0, 2])
def test_giving_up_says_how_many_attempts_were_made_and_it_made_them(
        blocked, fresh_dsn, make_target, retries):
    tree, blocker, watcher = blocked
    target = make_target(fresh_dsn, lock_timeout="100ms", lock_retries=str(retries),
                         lock_retry_backoff="20ms")
    with pytest.raises(Busy) as caught:
        migrate(target, tree)
    text = str(caught.value)
    assert caught.value.exit_code == 4
    assert attempts(watcher) == retries + 1
    assert f"{retries + 1} attempts" in text
    assert f"pid {blocker.info.backend_pid}" in text and "long report" in text
    assert columns(watcher) == ["id", "name"]
