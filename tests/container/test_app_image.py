"""The app image, built and run for real against the test PostgreSQL.

app/Dockerfile on a base made from Debian's packages (conftest.py), run with
`--network host` against a fresh database that the test then deploys with
`invoke deploy --env dev`: before the deploy /health/ready is 503 naming the command
that tells what to do (doctor, which routes an empty database to the deploy),
after it 200 and the image's own HEALTHCHECK turns healthy; the process is not root; the
logs are JSON lines without a secret; `docker stop` ends it gracefully.

The app connects as it does in tests/app: a login role that is a member of the app role
(created NOLOGIN by migration 0001, cluster-wide; created here the same way when this
server has none yet), so it has exactly the grants the migrations give the app.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.conftest import ROOT, create_database, drop_database, dsn_for
from tests.container.conftest import docker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

APP_ROLE = "avatar_app"  # Pulumi.dev.yaml's shipshape:app_role
DB_PASSWORD = "pw-container-never-logged-7d1e"  # trust auth ignores it; no log may show it
FAKE_TOKEN = "acr_" + "Z" * 43


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _loopback(admin_dsn: str) -> None:
    host = psycopg.conninfo.conninfo_to_dict(admin_dsn).get("host", "")
    if host not in ("127.0.0.1", "localhost", "::1"):
        pytest.skip(f"the test PostgreSQL is at {host!r}: the container reaches it with "
                    "--network host, so it must listen on the loopback")


def _ensure_app_role(admin_dsn: str) -> None:
    """As migration 0001 does it: NOLOGIN, only when missing, a concurrent creator tolerated."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("""
            DO $$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {name}) THEN
                    CREATE ROLE {role} NOLOGIN;
                END IF;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END $$""").format(name=sql.Literal(APP_ROLE), role=sql.Identifier(APP_ROLE)))


@pytest.fixture
def database(admin_dsn):
    """A fresh, empty database and a login role in the app role; both dropped afterwards."""
    _loopback(admin_dsn)
    _ensure_app_role(admin_dsn)
    name = create_database(admin_dsn)
    role = f"avatar_ctr_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
            sql.Identifier(role), sql.Literal(DB_PASSWORD), sql.Identifier(APP_ROLE)))
    app_dsn = psycopg.conninfo.make_conninfo(admin_dsn, dbname=name, user=role,
                                             password=DB_PASSWORD)
    yield dsn_for(admin_dsn, name), app_dsn, role
    drop_database(admin_dsn, name)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def container(app_image, database):
    """The app image running against the fresh database: (name, url)."""
    tag, _ = app_image
    _, app_dsn, _ = database
    name = f"shipshape-app-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    docker("run", "--detach", "--name", name, "--network", "host",
           # the image's own HEALTHCHECK command, polled every 2 s instead of 15 s
           "--health-interval", "2s",
           "-e", f"DATABASE_URL={app_dsn}", "-e", "APP_ENV=dev",
           "-e", "APP_HOST=127.0.0.1", "-e", f"APP_PORT={port}",
           "-e", "GENERATION_PROVIDER=placeholder", tag)
    yield name, f"http://127.0.0.1:{port}"
    docker("rm", "--force", name, check=False)


def health(name: str) -> str:
    return docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()


def wait_for(what: str, predicate, name: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        if docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "true":
            break
        time.sleep(0.5)
    logs = docker("logs", name, check=False)
    raise AssertionError(f"{what}: not within {timeout:g} s\n{logs.stdout[-3000:]}"
                         f"{logs.stderr[-3000:]}")


def test_build_context_is_the_allow_list_not_the_checkout(app_image):
    """The root .dockerignore: the legacy builder sent the whole checkout (.venv included,
    hundreds of MB); BuildKit reads app/Dockerfile.dockerignore instead."""
    _, log = app_image
    sent = re.search(r"Sending build context to Docker daemon\s+([\d.]+)\s*([kMG]?B)", log) or \
        re.search(r"transferring context:\s+([\d.]+)\s*([kMG]?B)", log)
    if sent is None:
        pytest.skip("this builder does not print the size of the build context")
    size = float(sent.group(1)) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[sent.group(2)]
    assert size < 5e6, sent.group(0)


def test_image_runs_as_a_user_with_the_dockerfile_healthcheck(app_image):
    tag, _ = app_image
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", tag).stdout)
    assert config["User"] == "10001:10001"
    assert "/health/ready" in " ".join(config["Healthcheck"]["Test"])
    assert config["Cmd"] == ["python", "-m", "app"]


def test_app_container_before_and_after_deploy(container, database, tmp_path):
    name, url = container
    admin_db_dsn, _, role = database

    wait_for("GET /health = 200", lambda: httpx.get(url + "/health", timeout=5)
             .status_code == 200, name)
    # uid of the container's main process, as the kernel sees it: never root
    status = docker("exec", name, "cat", "/proc/1/status").stdout
    uids = re.search(r"^Uid:\s+(.*)$", status, re.MULTILINE).group(1).split()
    assert uids and all(uid == "10001" for uid in uids), status

    # before a deploy: not ready, and the answer names the command that fixes it
    before = httpx.get(url + "/health/ready", timeout=10)
    assert before.status_code == 503, before.text
    # the app names what it cannot fix itself with doctor, which names the deploy
    assert "invoke doctor --env dev" in before.json()["message"]
    assert health(name) != "healthy"

    # deploy the database as an operator would; its last gate is this container's readiness
    env = {**os.environ, "SHIPSHAPE_STATE_DIR": str(tmp_path / "state"),
           "SHIPSHAPE_REPORTS_DIR": str(tmp_path / "reports")}
    env.pop("DATABASE_URL", None)
    deploy = subprocess.run(
        [str(Path(sys.executable).with_name("invoke")), "deploy", "--env", "dev",
         "--dsn", admin_db_dsn, "--set", f"app_url={url}"],
        check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert deploy.returncode == 0, deploy.stdout[-4000:] + deploy.stderr[-4000:]

    after = httpx.get(url + "/health/ready", timeout=10)
    assert after.status_code == 200, after.text
    wait_for("HEALTHCHECK healthy", lambda: health(name) == "healthy", name, timeout=90)

    # a request with a token that must never reach the log
    denied = httpx.get(url + "/api/apps/avatar-creator/projects",
                       headers={"Authorization": f"Bearer {FAKE_TOKEN}"}, timeout=10)
    assert denied.status_code == 401, denied.text

    # docker stop: SIGTERM, and the app shuts down by itself well before the 30 s grace
    started = time.monotonic()
    docker("stop", "--time", "30", name, timeout=90)
    assert time.monotonic() - started < 25, "the app did not stop on SIGTERM"
    state = json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)
    assert state["ExitCode"] in (0, 143) and not state["OOMKilled"], state

    logs = docker("logs", name)
    text = logs.stdout + logs.stderr
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    for secret in (DB_PASSWORD, FAKE_TOKEN):
        assert secret not in text
    started_line = next(line for line in lines if line["msg"] == "avatar-creator started")
    assert started_line["env"] == "dev" and started_line["database"].startswith(f"{role}@")
    messages = [line["msg"] for line in lines]
    assert "avatar-creator stopped" in messages[messages.index("avatar-creator started"):], \
        messages[-5:]
