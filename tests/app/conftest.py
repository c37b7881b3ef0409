"""A real app on real PostgreSQL: databases deployed by shipshape, the app as a uvicorn
subprocess on a free loopback port, connected as a login role that has exactly the grants
the migrations give the app role. Nothing is mocked; Hugging Face is replaced by a local
HTTP stub (the app's HUGGINGFACE_API_URL), never called.

Two stacks per session: `stack` (placeholder provider), kept intact; and `hf_stack`
(huggingface provider against the stub), which the readiness and drift tests break and
repair.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.conftest import ROOT, create_database, drop_database, dsn_for

if str(ROOT) not in sys.path:  # `import app` must find the package, not tests/app
    sys.path.insert(0, str(ROOT))

from app import tokens

API = "/api/apps/avatar-creator"
DB_PASSWORD = "pw-never-logged-4f9c"  # trust auth ignores it; the logs must never show it
HF_KEY = "hf_TestKeyNeverLogged0123456789"
ISSUED_TOKENS: list[str] = []  # every token a test issued: none may appear in a log


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_env():
    from shipshape.settings import load_environment

    return load_environment("local", config_dir=ROOT)


def deploy(dsn: str):
    from shipshape.ops import pipeline
    from shipshape.targets import Target

    return pipeline.deploy(Target(local_env(), dsn, "test"), ROOT / "sql")


class AppProcess:
    """`python -m app` on a free port, its output in a log file."""

    def __init__(self, dsn: str, log_path: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "DATABASE_URL": dsn,
            "APP_ENV": "local",
            "APP_HOST": "127.0.0.1",
            "APP_PORT": str(self.port),
            "APP_WORKER_POLL_INTERVAL": "0.2",
            "APP_WORKER_CONCURRENCY": "4",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.process: subprocess.Popen | None = None

    def start(self, ready: bool = True, timeout: float = 20.0) -> AppProcess:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        path = "/health/ready" if ready else "/health"
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app exited {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                last = httpx.get(self.url + path, timeout=5)
                if last.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"app not answering 200 on {path}: {last and last.text}\n{self.log()[-3000:]}"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Stack:
    """One deployed database, an admin connection to it, and an app serving it."""

    def __init__(self, admin_dsn: str, dsn: str, app: AppProcess):
        self.admin_dsn = admin_dsn  # superuser on this database: the tests' own hand
        self.dsn = dsn
        self.app = app
        self.client = httpx.Client(base_url=app.url, timeout=20)

    @property
    def url(self) -> str:
        return self.app.url

    def sql(self, query, params=None, fetch: bool = True):
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if fetch and cur.description else None

    def user(self, credits: int = 1000) -> TestUser:
        email = f"user-{uuid.uuid4().hex[:10]}@example.test"
        with psycopg.connect(self.admin_dsn) as conn:
            user_id = conn.execute(
                'INSERT INTO users (email, name, "creditBalance") VALUES (%s, %s, %s) RETURNING id',
                [email, "Test User", credits],
            ).fetchone()[0]
            token = tokens.issue(conn, user_id, "test")
        ISSUED_TOKENS.append(token)
        return TestUser(self, user_id, token)

    def balance(self, user_id: str) -> int:
        return self.sql('SELECT "creditBalance" FROM users WHERE id = %s', [user_id])[0][0]


class TestUser:
    __test__ = False

    def __init__(self, stack: Stack, user_id: str, token: str):
        self.stack, self.id, self.token = stack, user_id, token
        self.headers = {"Authorization": f"Bearer {token}"}

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.stack.client.request(method, API + path, headers=headers, **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def put(self, path, json=None, **kw):
        return self.request("PUT", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def project(self, name: str = "Test Project") -> dict:
        response = self.post("/projects", json={"name": name, "description": "Testing"})
        assert response.status_code == 201, response.text
        return response.json()["project"]

    def wait_generation(self, generation_id: str, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.get(f"/generations/{generation_id}").json()["generation"]
            if body["status"] in ("completed", "failed"):
                return body
            time.sleep(0.05)
        raise AssertionError(f"generation {generation_id} still {body['status']} after {timeout}s")


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def app_state_dir(session_state_dir):
    """Keep shadow-snapshot caches and app state out of the repository."""
    return session_state_dir


@pytest.fixture(scope="session")
def databases(admin_dsn, app_state_dir):
    """Factory of deployed databases, all dropped at the end of the session."""
    created = []

    def make() -> str:
        name = create_database(admin_dsn)
        created.append(name)
        dsn = dsn_for(admin_dsn, name)
        deploy(dsn)
        return dsn

    yield make
    for name in created:
        drop_database(admin_dsn, name)


@pytest.fixture(scope="session")
def app_login(admin_dsn, databases):
    """A login role that is a member of the app role (NOLOGIN, cluster-wide, created by
    0001): the app runs with exactly the privileges the migrations grant."""
    first = databases()  # the app role exists once a database is deployed
    role = f"avatar_app_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                sql.Identifier(role), sql.Identifier(local_env().app_role)
            )
        )
    yield role, first
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def app_dsn(admin_dsn: str, dsn: str, role: str) -> str:
    dbname = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    return psycopg.conninfo.make_conninfo(admin_dsn, dbname=dbname, user=role, password=DB_PASSWORD)


@pytest.fixture(scope="session")
def stack(admin_dsn, app_login, tmp_path_factory):
    """The placeholder-provider app on a deployed database; tests never break it."""
    role, dsn = app_login
    logs = tmp_path_factory.mktemp("logs")
    app = AppProcess(app_dsn(admin_dsn, dsn, role), logs / "app.log").start()
    yield Stack(dsn, dsn, app)
    app.stop()


class HuggingFaceStub:
    """A loopback stand-in for the inference API: an image, or an error for prompts that
    contain "fail" (its body echoes the Authorization header, which the app must scrub)."""

    def __init__(self):
        from app import png

        self.requests: list[dict] = []
        image = png.render(7, 64, 64)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append(
                    {
                        "path": self.path,
                        "body": body,
                        "authorization": self.headers.get("Authorization"),
                    }
                )
                if "fail" in body["inputs"]:
                    payload = json.dumps(
                        {"error": f"model overloaded; you sent {self.headers.get('Authorization')}"}
                    ).encode()
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                else:
                    payload = image
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/models"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def hf_stub():
    stub = HuggingFaceStub()
    yield stub
    stub.close()


@pytest.fixture(scope="session")
def hf_stack(admin_dsn, app_login, databases, hf_stub, tmp_path_factory):
    """The huggingface-provider app (against the stub) on a database of its own, which
    readiness and drift tests may break, as long as they repair it."""
    role, _ = app_login
    dsn = databases()
    logs = tmp_path_factory.mktemp("logs-hf")
    app = AppProcess(
        app_dsn(admin_dsn, dsn, role),
        logs / "app.log",
        GENERATION_PROVIDER="huggingface",
        HUGGINGFACE_API_KEY=HF_KEY,
        HUGGINGFACE_API_URL=hf_stub.url,
    ).start()
    yield Stack(dsn, dsn, app)
    app.stop()
