"""The local server's status from its pidfile: a stale or half-written pidfile is not a
running server, so `invoke down` never hands pg_ctl a pid that is not a postmaster."""

from __future__ import annotations

import os

import pytest

from shipshape.adapters import embedded


@pytest.fixture
def pgdata(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIPSHAPE_STATE_DIR", str(tmp_path))
    directory = tmp_path / "local" / "pgdata"
    directory.mkdir(parents=True)
    return directory


def test_a_pid_that_is_not_postgres_is_not_running(pgdata):
    # this test's own pid: alive, but not a postmaster (a pid reused after a crash)
    (pgdata / "postmaster.pid").write_text(f"{os.getpid()}\n{pgdata}\n0\n5432\n/tmp\n")
    assert embedded.local_status()["running"] is False
    assert embedded.stop_local() is False


@pytest.mark.parametrize("content", ["", "12", "not-a-pid\n"])
def test_a_half_written_pidfile_is_not_running(pgdata, content):
    (pgdata / "postmaster.pid").write_text(content)
    assert embedded.local_status()["running"] is False


def test_no_pidfile_is_not_running(pgdata):
    assert embedded.local_status() == {"running": False, "pgdata": str(pgdata)}
