"""shipshape.appserver: the app in the background for `local` (pid file, log, readiness),
and the demo token in a private file."""

from __future__ import annotations

import stat

import httpx
import psycopg
import pytest
from invoke import Context
from invoke.exceptions import Exit

from tests.app.conftest import API, ISSUED_TOKENS, free_port


def test_start_twice_status_token_stop(stack, tmp_path, monkeypatch):
    from shipshape import appserver
    from shipshape.tasks import app as app_tasks

    monkeypatch.setenv("SHIPSHAPE_STATE_DIR", str(tmp_path))
    app_dsn = stack.app.env["DATABASE_URL"]
    port = free_port()
    first = appserver.start(app_dsn, port=port)
    try:
        assert first["started"] and first["ready"] and first["url"] == f"http://127.0.0.1:{port}"
        assert (tmp_path / "app" / "app.pid").read_text().strip() == str(first["pid"])
        again = appserver.start(app_dsn, port=port)  # harmless: the running app is reused
        assert again["started"] is False and again["pid"] == first["pid"]
        fresh = appserver.start(app_dsn, port=port, restart=True)  # new code: a new process
        assert fresh["started"] and fresh["ready"] and fresh["pid"] != first["pid"]
        assert appserver.status()["ready"] is True

        token_file = appserver.write_demo_token(app_dsn)
        assert token_file == tmp_path / "demo-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        ISSUED_TOKENS.append(token)
        projects = httpx.get(
            first["url"] + API + "/projects", headers={"Authorization": f"Bearer {token}"}
        )
        assert projects.status_code == 200
        appserver.write_demo_token(app_dsn)  # still valid: kept, not re-issued
        assert token_file.read_text().strip() == token
        with psycopg.connect(stack.dsn) as conn:
            conn.execute(
                'UPDATE api_tokens SET "revokedAt" = now() WHERE "tokenHash" = '
                "encode(sha256(%s::bytea), 'hex')",
                [token],
            )
        appserver.write_demo_token(app_dsn)  # revoked: replaced
        assert token_file.read_text().strip() != token
        ISSUED_TOKENS.append(token_file.read_text().strip())
        with pytest.raises(Exception, match="no demo user in prod"):
            appserver.write_demo_token(app_dsn, env="prod")
        app_tasks.status(Context())  # ready: exit 0
    finally:
        assert appserver.stop() is True
    assert appserver.status()["running"] is False
    assert appserver.stop() is False
    assert not (tmp_path / "app" / "app.pid").exists()
    log = (tmp_path / "app" / "app.log").read_text()
    assert "avatar-creator stopped" in log  # SIGTERM: a clean shutdown
    with pytest.raises(Exit) as exit_:
        app_tasks.status(Context())
    assert exit_.value.code == 2


def test_start_refuses_a_taken_port(stack, tmp_path, monkeypatch):
    from shipshape import appserver
    from shipshape.errors import ConfigError

    monkeypatch.setenv("SHIPSHAPE_STATE_DIR", str(tmp_path))
    port = int(stack.url.rsplit(":", 1)[1])
    with pytest.raises(ConfigError, match=f"Port {port}"):
        appserver.start(stack.app.env["DATABASE_URL"], port=port)
