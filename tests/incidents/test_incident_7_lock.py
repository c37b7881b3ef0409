"""A long transaction holds a lock on avatars while a deploy runs: the migration's
lock_timeout expires, it is retried, the deploy gives up with exit 4 naming the holder;
doctor names the same session; blocking-session ends exactly that session (only with
--yes); then the deploy succeeds."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from shipshape.errors import Busy, Refused
from shipshape.ops import pipeline


def test_long_transaction_blocks_a_deploy_until_the_runbook_ends_it(incident, make_target):
    # 0010 (indexes on avatars) is pending: the deploy will need a SHARE lock on avatars.
    for index in ("avatars_userId_idx", "avatars_projectId_idx", "avatars_sourceType_idx"):
        incident.sql(f'DROP INDEX "{index}"')
    incident.sql("DELETE FROM shipshape.history WHERE version = 10")

    holder = psycopg.connect(incident.dsn, application_name="psql alice")
    holder.execute("UPDATE avatars SET name = name WHERE id = %s", [incident.ids["avatar"]])
    holder_pid = holder.info.backend_pid  # idle in transaction, ROW EXCLUSIVE on avatars
    try:
        impatient = make_target(incident.dsn, "dev", lock_timeout="200ms", lock_retries=1,
                                lock_retry_backoff="50ms")
        with pytest.raises(Busy) as busy:
            pipeline.deploy(impatient, incident.sql_dir)
        assert busy.value.exit_code == 4
        assert f"pid {holder_pid}, 'psql alice'" in str(busy.value)
        assert "avatars (RowExclusiveLock)" in str(busy.value)

        # While someone waits for it, the holder is LOCK_BLOCKING, with no threshold.
        waiter = _wait_for_lock(incident.dsn)
        try:
            blocking = _poll(lambda: [f for f in incident.doctor()[0].findings
                                      if f.code == "LOCK_BLOCKING"])
            assert blocking[0].object == f"backend pid {holder_pid}"
            assert f"blocks 1 session(s) (pid {waiter['pid']})" in blocking[0].message
        finally:
            waiter["cancel"]()

        _, groups = incident.doctor(long_transaction="100ms")
        assert [g.runbook.id for g in groups] == ["blocking-session", "migrations-not-applied"]
        (finding,) = groups[0].findings
        assert finding.code == "LONG_TRANSACTION" and finding.object == f"backend pid {holder_pid}"
        assert "'psql alice'" in finding.message and "avatars (RowExclusiveLock)" in finding.message

        with pytest.raises(Refused) as refused:  # ending a session always needs --yes
            incident.run("blocking-session", long_transaction="100ms", yes=False)
        assert "needs --yes in every env" in str(refused.value)
        assert not holder.closed and holder.execute("SELECT 1").fetchone() == (1,)

        result = incident.run("blocking-session", long_transaction="100ms")
        assert result.outcome == "fixed", result.message
        (terminate,) = result.steps
        assert "pg_terminate_backend(pid)" in terminate.sql and f"pid = {holder_pid}" in terminate.sql
        assert terminate.detail == f"ended pid {holder_pid}"
        assert [p["pid"] for p in terminate.preview] == [holder_pid]
        assert result.next == [("migrations-not-applied",
                                "invoke runbook.run migrations-not-applied --env dev")]
        with pytest.raises(psycopg.OperationalError):
            holder.execute("SELECT 1")
    finally:
        holder.close()

    deployed = pipeline.deploy(impatient, incident.sql_dir)
    assert deployed.exit_code == 0 and deployed.to_version == 12
    assert incident.findings() == []


def _wait_for_lock(dsn: str) -> dict:
    """A session that queues for a SHARE lock on avatars, in a thread."""
    conn = psycopg.connect(dsn, autocommit=True, application_name="waiting job")
    state = {"pid": conn.info.backend_pid}

    def wait():
        try:
            conn.execute("BEGIN")
            conn.execute("SET LOCAL lock_timeout = '20s'")
            conn.execute("LOCK TABLE avatars IN SHARE MODE")
        except psycopg.Error:
            pass
        finally:
            conn.close()

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()

    def cancel():
        with psycopg.connect(dsn, autocommit=True) as other:
            other.execute("SELECT pg_cancel_backend(%s)", [state["pid"]])
        thread.join(10)

    state["cancel"] = cancel
    return state


def _poll(probe, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("never found")
