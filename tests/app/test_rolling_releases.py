"""Two app releases on one database through an expand/contract deploy (issue #12).

Release R is this build (SCHEMA_VERSION, 0012); release R+1 is the same build run as
release 0014 (APP_SCHEMA_VERSION), the release that ships 0013 (a contract migration: it
tightens a check R may violate) and 0014 (an expand one). Both are real uvicorn processes
on one real database, deployed by the same pipeline.deploy the tasks run; each records
itself in shipshape.app_instances.
"""

from __future__ import annotations

import shutil
import threading
import time

import httpx
import psycopg
import pytest

from tests.app.conftest import ROOT, AppProcess, app_dsn, local_env
from tests.conftest import create_database, drop_database, dsn_for
from tests.treeutil import write_migration

R, R_NEXT = 12, 14


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", root)
    write_migration(root, "0013_usage_count_check",
                    "-- shipshape:phase contract\n"
                    'ALTER TABLE avatars ADD CONSTRAINT "avatars_usageCount_check" '
                    'CHECK ("usageCount" >= 0);\n',
                    'ALTER TABLE avatars DROP CONSTRAINT "avatars_usageCount_check";\n')
    write_migration(root, "0014_avatar_archived_at",
                    'ALTER TABLE avatars ADD COLUMN "archivedAt" timestamptz;\n',
                    "-- shipshape:destructive\n"
                    'ALTER TABLE avatars DROP COLUMN "archivedAt";\n')
    return root


@pytest.fixture
def database(admin_dsn, app_state_dir):
    name = create_database(admin_dsn)
    yield dsn_for(admin_dsn, name)
    drop_database(admin_dsn, name)


def deploy(dsn, sql_dir, phase):
    from shipshape.ops import pipeline
    from shipshape.targets import Target

    return pipeline.deploy(Target(local_env(), dsn, "test"), sql_dir, phase=phase)


def ready(app: AppProcess) -> int:
    return httpx.get(app.url + "/health/ready", timeout=10).status_code


def registered(dsn) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT instance, release FROM shipshape.app_instances").fetchall()
    return dict(rows)


def wait_for(condition, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not {what} after {timeout}s")


def test_expand_keeps_both_releases_ready_and_contract_waits_for_the_old_one(
        admin_dsn, app_login, database, tree, tmp_path):
    from shipshape.errors import Refused

    role, _ = app_login
    deploy(database, ROOT / "sql", "all")  # the database as release R needs it
    url = app_dsn(admin_dsn, database, role)
    beat = {"APP_HEARTBEAT_INTERVAL": "0.2"}
    old = AppProcess(url, tmp_path / "r.log", APP_INSTANCE_ID="r-1", **beat).start()
    new = None
    try:
        wait_for(lambda: registered(database).get("r-1") == R, "registered as release R")

        # The expand deploy, with R serving: it stays ready all through it.
        statuses, done = [], threading.Event()

        def probe():
            while not done.is_set():
                statuses.append(ready(old))

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            result = deploy(database, tree, "expand")
        finally:
            done.set()
            prober.join()
        assert result.to_version == R_NEXT
        assert statuses and set(statuses) == {200}, statuses
        contract_gate = next(g for g in result.gates if g.name == "contract")
        assert contract_gate.status == "skipped" and "0013" in contract_gate.detail

        # R+1 rolls out next to R: both ready on the expanded schema.
        new = AppProcess(url, tmp_path / "r1.log", APP_INSTANCE_ID="r1-1",
                         APP_SCHEMA_VERSION=str(R_NEXT), **beat).start()
        assert (ready(old), ready(new)) == (200, 200)
        wait_for(lambda: registered(database) == {"r-1": R, "r1-1": R_NEXT}, "both registered")

        # The contract phase while R still runs: refused, nothing applied, both still ready.
        with pytest.raises(Refused) as refused:
            deploy(database, tree, "contract")
        assert "r-1" in str(refused.value) and "release 0012" in str(refused.value)
        assert "--phase contract" in str(refused.value)
        with psycopg.connect(database) as conn:
            assert conn.execute("SELECT count(*) FROM shipshape.history "
                                "WHERE version = 13").fetchone() == (0,)
        assert (ready(old), ready(new)) == (200, 200)

        # R stops (the rolling replacement's last step): it deregisters, contract runs.
        old.stop()
        assert registered(database) == {"r1-1": R_NEXT}
        result = deploy(database, tree, "contract")
        assert [g.status for g in result.gates if g.name == "contract"] == ["ok"]
        assert ready(new) == 200

        # Release R on the contracted schema is not ready, and says why.
        again = AppProcess(url, tmp_path / "r-again.log", APP_INSTANCE_ID="r-2",
                           **beat).start(ready=False)
        try:
            response = httpx.get(again.url + "/health/ready", timeout=10)
            assert response.status_code == 503
            message = response.json()["checks"]["schemaVersion"]["message"]
            assert "contract migration 13 is applied" in message
            assert "deploy the app release built for version 14" in message
        finally:
            again.stop()
        assert ready(new) == 200
    finally:
        old.stop()
        if new:
            new.stop()
