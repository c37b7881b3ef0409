"""No leftovers of a killed shadow build (issue 10).

`invoke db.verify` is killed with SIGKILL at random points while it builds the shadow;
after the next command there is no scratch database, no scratch server process and no
temporary folder of it. SIGTERM ends it with its scratch objects removed at once, and
doctor reports what a killed one left without removing it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg
import pytest

from shipshape.adapters import embedded, owners
from shipshape.engine import shadow
from shipshape.ops import doctor, pipeline
from tests.conftest import ROOT, run_invoke
from tests.treeutil import write_migration

KILLS = 10
SERVER_KILLS = 3
SEED = int(os.environ.get("SHIPSHAPE_KILL_SEED", random.randrange(1 << 30)))


def slow_tree(root: Path, count: int = 12) -> Path:
    """Migrations that take a moment each, so that a kill lands inside the build."""
    for i in range(1, count + 1):
        write_migration(root, f"{i:04d}_t{i}",
                        f"CREATE TABLE t{i} (id integer PRIMARY KEY);\nSELECT pg_sleep(0.05);\n",
                        f"-- shipshape:destructive\nDROP TABLE t{i};\n")
    return root


def needs_own_server(root: Path) -> Path:
    """A migration that cannot run inside a transaction: the shadow goes to a scratch server."""
    write_migration(root, "0099_vacuum", "-- shipshape:no-transaction\nVACUUM t1;\n",
                    "SELECT 1;\n")
    return root


def shadow_databases(admin_dsn: str, pid: int) -> list[str]:
    with psycopg.connect(admin_dsn) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'shipshape\\_shadow\\_%'")]
    return [n for n in names if (o := owners.parse(n[len(shadow.SCRATCH_PREFIX):])) is not None and o.pid == pid]


def scratch_folders(pid: int) -> list[Path]:
    return [p for p in Path(tempfile.gettempdir()).glob(f"{embedded.SCRATCH_PREFIX}{pid}_*")]


def postgres_serving(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(folder) in " ".join(
                process.info["cmdline"] or ()):
            found.append(process)
    return found


def start_verify(dsn: str, tree: Path, state: Path) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environ["SHIPSHAPE_STATE_DIR"] = str(state)
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "db.verify", "--env",
         "dev", "--dsn", dsn, "--sql-dir", str(tree)],
        cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(found, proc: subprocess.Popen, what: str, limit: float = 120):
    """Poll until found() is true; the child must still be running."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"verify ended ({proc.returncode}) before {what}: "
                                 f"{proc.stderr.read().decode()[-2000:]}")
        if found():
            return
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"no {what} within {limit} s")


def verify_next(dsn: str, tree: Path, state: Path):
    return run_invoke("db.verify", "--env", "dev", "--dsn", dsn, "--sql-dir", str(tree),
                      env={"SHIPSHAPE_STATE_DIR": str(state)})



@contextmanager
def pinned(admin_dsn: str, name: str):
    """Keep the scratch database `name` from being dropped by anyone: on a shared cluster
    every other shipshape process of this host (a deploy, a verify) removes an orphaned
    one within a second, which would decide these tests for them. A disabled
    subscription makes DROP DATABASE ... WITH (FORCE) fail."""
    dsn = psycopg.conninfo.make_conninfo(admin_dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SUBSCRIPTION shipshape_test_pin CONNECTION 'dbname=none' "
                     "PUBLICATION none WITH (connect = false)")
    try:
        yield
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER SUBSCRIPTION shipshape_test_pin SET (slot_name = NONE)")
            conn.execute("DROP SUBSCRIPTION shipshape_test_pin")


@pytest.fixture
def drops(monkeypatch) -> list[str]:
    """The scratch databases this process tries to drop (others may drop them too)."""
    tried = []
    drop = shadow._drop

    def recorded(admin, name):
        tried.append(name)
        drop(admin, name)
    monkeypatch.setattr(shadow, "_drop", recorded)
    return tried

@pytest.fixture
def deployed(tmp_path, fresh_dsn, make_target, cache_dir):
    tree = slow_tree(tmp_path / "sql")
    assert pipeline.deploy(make_target(fresh_dsn, "dev"), tree).exit_code == 0
    return tree


def test_sigkill_during_the_build_leaves_nothing_after_the_next_command(
        deployed, admin_dsn, fresh_dsn, cache_dir):
    chance = random.Random(SEED)
    left = 0
    for attempt in range(KILLS):
        shutil.rmtree(cache_dir / "cache", ignore_errors=True)
        proc = start_verify(fresh_dsn, deployed, cache_dir)
        wait_for(lambda pid=proc.pid: shadow_databases(admin_dsn, pid), proc, "shadow database")
        time.sleep(chance.uniform(0, 0.6))  # the build takes 12 x 50 ms and more
        proc.kill()
        proc.wait()
        left += bool(shadow_databases(admin_dsn, proc.pid))

        after = verify_next(fresh_dsn, deployed, cache_dir)
        assert after.returncode == 0, (SEED, attempt, after.stderr[-2000:])
        assert shadow_databases(admin_dsn, proc.pid) == [], (SEED, attempt)
    assert left >= KILLS // 2, f"seed {SEED}: only {left} kills landed inside the build"


def test_sigkill_of_a_scratch_server_build_leaves_no_process_and_no_folder(
        tmp_path, fresh_dsn, make_target, cache_dir):
    tree = needs_own_server(slow_tree(tmp_path / "sql", count=4))
    target = make_target(fresh_dsn, "dev")
    assert pipeline.deploy(target, tree).exit_code == 0
    chance = random.Random(SEED)
    for attempt in range(SERVER_KILLS):
        shutil.rmtree(cache_dir / "cache", ignore_errors=True)
        proc = start_verify(fresh_dsn, tree, cache_dir)
        wait_for(lambda pid=proc.pid: any(postgres_serving(f) for f in scratch_folders(pid)), proc,
                 "scratch server")
        time.sleep(chance.uniform(0, 0.3))
        proc.kill()
        proc.wait()
        folders = scratch_folders(proc.pid)
        orphans = [p for f in folders for p in postgres_serving(f)]
        assert folders, (SEED, attempt)  # killed inside the build: its folder is left
        if attempt == 0:  # doctor reports it, and removes nothing (it builds on a server too)
            found = [f.object for f in doctor.diagnose(target, tree).findings
                     if f.code == "SHADOW_LEFTOVER"]
            assert [o for o in found if str(folders[0]) in o] == [
                f"scratch server {folders[0]}"], found
            assert scratch_folders(proc.pid) == folders

        after = verify_next(fresh_dsn, tree, cache_dir)
        assert after.returncode == 0, (SEED, attempt, after.stderr[-2000:])
        assert scratch_folders(proc.pid) == [], (SEED, attempt)
        assert [p for p in orphans if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                ] == [], (SEED, attempt)


def test_sigterm_removes_the_scratch_database_on_its_way_out(deployed, admin_dsn, fresh_dsn,
                                                             cache_dir):
    shutil.rmtree(cache_dir / "cache", ignore_errors=True)
    proc = start_verify(fresh_dsn, deployed, cache_dir)
    wait_for(lambda pid=proc.pid: shadow_databases(admin_dsn, pid), proc, "shadow database")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    assert shadow_databases(admin_dsn, proc.pid) == []


def test_doctor_reports_a_leftover_and_verify_removes_it(deployed, admin_dsn, fresh_dsn,
                                                         make_target, cache_dir, drops):
    shutil.rmtree(cache_dir / "cache", ignore_errors=True)
    proc = start_verify(fresh_dsn, deployed, cache_dir)
    wait_for(lambda pid=proc.pid: shadow_databases(admin_dsn, pid), proc, "shadow database")
    [name] = shadow_databases(admin_dsn, proc.pid)
    target = make_target(fresh_dsn, "dev")
    with pinned(admin_dsn, name):  # before the kill: from then on, anyone may remove it
        proc.kill()
        proc.wait()
        found = [f for f in doctor.diagnose(target, deployed).findings
                 if f.code == "SHADOW_LEFTOVER"]
        assert [f.object for f in found if name in f.object] == [f"scratch database {name}"]
        assert found[0].severity == "warning"
        assert "invoke db.verify --env dev" in found[0].fix
        assert name not in drops  # doctor removed nothing (it drops its own scratch one)
        shadow.remove_leftovers(target)  # the sweep every shadow build starts with
        assert name in drops  # found as a leftover and dropped (the pin refused it)
    shadow.remove_leftovers(target)
    assert shadow_databases(admin_dsn, proc.pid) == []


def test_a_scratch_object_of_a_live_owner_or_another_host_is_never_removed(
        admin_dsn, fresh_dsn, make_target, drops):
    me = owners.me()
    other_host = owners.Owner(me.pid, me.start, "0" * 8 if me.host != "0" * 8 else "1" * 8)
    reused = owners.Owner(me.pid, me.start + 1, me.host)  # same pid, another start time
    names = {key: f"{shadow.SCRATCH_PREFIX}{o.marker}_test{key}" for key, o in
             {"me": me, "other": other_host, "reused": reused}.items()}
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with pinned(admin_dsn, names["reused"]):  # other processes of this host sweep too
            shadow.remove_leftovers(make_target(fresh_dsn, "dev"))
        with psycopg.connect(admin_dsn) as conn:
            left = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        assert names["me"] in left and names["other"] in left
        assert [n for n in drops if n in names.values()] == [names["reused"]]
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            for name in names.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
