"""Liveness, readiness and /health/models; readiness flips with the database and back."""

from __future__ import annotations

import subprocess
import sys

import httpx
import psycopg

from tests.app.conftest import API, ROOT, AppProcess, deploy, free_port, local_env


def test_health_and_ready(stack):
    assert stack.client.get("/health").json() == {"status": "ok"}
    ready = stack.client.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and "failed" not in body
    assert body["checks"]["schemaVersion"] == {"ok": True, "database": 12, "app": 12}
    assert body["checks"]["models"] == {"ok": True, "enabled": 4, "expected": 4}
    assert body["checks"]["database"]["ok"] and body["checks"]["schemaObjects"]["ok"]
    for path in ("/health/models", f"{API}/health/models"):
        models = stack.client.get(path)
        assert models.status_code == 200
        assert models.json()["status"] == "healthy"
        assert models.json()["modelCount"] == 4 and models.json()["expected"] == 4


def _ready(stack):
    response = stack.client.get("/health/ready")
    return response.status_code, response.json()


def test_readiness_flips_when_the_models_are_deleted(hf_stack):
    user = hf_stack.user()
    project = user.project()
    assert _ready(hf_stack)[0] == 200
    hf_stack.sql("DELETE FROM ai_models", fetch=False)
    try:
        status, body = _ready(hf_stack)
        assert status == 503 and body["failed"] == ["models"]
        assert body["message"] == (
            "no enabled AI models for avatar-creator (0 of 4 expected): "
            "run `invoke db.seed --env local`"
        )
        models = hf_stack.client.get("/health/models")
        assert models.status_code == 503 and models.json()["modelCount"] == 0
        for response in (
            user.get("/models"),
            user.post(f"/projects/{project['id']}/avatars/generate", json={"prompt": "a portrait"}),
        ):
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "NO_AI_MODELS"
            assert "invoke db.seed --env local" in response.json()["error"]["message"]
        assert hf_stack.balance(user.id) == 1000
    finally:
        deploy(hf_stack.dsn)  # the seed gate puts the 4 models back
    assert _ready(hf_stack)[0] == 200
    assert user.get("/models").json()["count"] == 4


def test_a_disabled_model_is_skipped_and_reported(hf_stack):
    user = hf_stack.user()
    project = user.project()
    hf_stack.sql(
        "UPDATE ai_models SET enabled = false WHERE \"modelKey\" = 'avatar-creator:flux-dev-base'",
        fetch=False,
    )
    try:
        response = user.post(
            f"/projects/{project['id']}/avatars/generate", json={"prompt": "a portrait"}
        )
        # Next: lowest tier left is basic; of its two models the cheaper one (6 < 12).
        assert response.json()["generation"]["modelKey"] == "avatar-creator:flux-schnell-fast"
        assert response.json()["creditUsed"] == 6
        models = hf_stack.client.get("/health/models")
        assert models.status_code == 503 and models.json()["modelCount"] == 3
        assert _ready(hf_stack)[0] == 200  # one model is enough to serve
    finally:
        deploy(hf_stack.dsn)
    assert hf_stack.client.get("/health/models").status_code == 200


def test_readiness_flips_when_a_migration_is_pending(hf_stack):
    newest = hf_stack.sql("SELECT * FROM shipshape.history ORDER BY version DESC LIMIT 1")[0]
    assert newest[0] == 12
    hf_stack.sql("DELETE FROM shipshape.history WHERE version = 12", fetch=False)
    try:
        status, body = _ready(hf_stack)
        assert status == 503 and body["failed"] == ["schemaVersion"]
        assert (
            body["message"]
            == "database at version 11, app needs 12: run `invoke deploy --env local`"
        )
        assert body["checks"]["schemaVersion"]["database"] == 11
    finally:
        placeholders = ", ".join(["%s"] * len(newest))
        hf_stack.sql(
            f"INSERT INTO shipshape.history VALUES ({placeholders})", list(newest), fetch=False
        )
    assert _ready(hf_stack)[0] == 200

    # Now for real: roll 0012 and 0011 back with shipshape, so that deploy has something
    # to apply.
    user = hf_stack.user()
    from shipshape import db
    from shipshape.engine import migrations

    env = local_env()
    loaded = migrations.load(ROOT / "sql", env)
    with psycopg.connect(hf_stack.dsn) as conn, db.advisory_lock(conn, "10s"):
        migrations.rollback(conn, env, loaded, 10)
    try:
        status, body = _ready(hf_stack)
        assert status == 503 and "schemaVersion" in body["failed"]
        # the version gap has a history behind it: a pending migration, deploy fixes it
        assert "run `invoke deploy --env local`" in body["checks"]["schemaVersion"]["message"]
        assert "table api_tokens" in body["checks"]["schemaObjects"]["missing"]
        # a missing object on its own could be a pending migration or a DROP by hand
        assert body["checks"]["schemaObjects"]["message"].endswith(
            "run `invoke doctor --env local`"
        )
        drift = user.get("/projects")  # auth needs api_tokens
        assert drift.status_code == 503
        assert drift.json()["error"]["code"] == "SCHEMA_MISMATCH"
        assert drift.json()["error"]["objects"] == ["table api_tokens"]
    finally:
        result = deploy(hf_stack.dsn)
    assert result.from_version == 10 and result.to_version == 12
    assert _ready(hf_stack)[0] == 200
    assert user.get("/projects").status_code == 401  # its token went with the table
    assert hf_stack.user().get("/projects").status_code == 200


def test_schema_drift_is_503_naming_the_object(hf_stack):
    user = hf_stack.user()
    project = user.project()
    hf_stack.sql(
        'ALTER TABLE avatar_generations RENAME COLUMN "projectId" TO "projectId_gone"', fetch=False
    )
    try:
        response = user.post(
            f"/projects/{project['id']}/avatars/generate", json={"prompt": "a portrait"}
        )
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "SCHEMA_MISMATCH"
        assert error["objects"] == ['column avatar_generations."projectId"']
        # not `invoke deploy`: deploy cannot put back a column dropped by hand (issue 11)
        assert error["fix"] == "run `invoke doctor --env local`"
        assert "invoke deploy" not in error["message"]
        assert hf_stack.balance(user.id) == 1000  # the charge was rolled back with the rest
        status, body = _ready(hf_stack)
        assert status == 503 and body["failed"] == ["schemaObjects"]
    finally:
        hf_stack.sql(
            'ALTER TABLE avatar_generations RENAME COLUMN "projectId_gone" TO "projectId"',
            fetch=False,
        )
    hf_stack.sql("ALTER TABLE avatar_projects RENAME TO avatar_projects_gone", fetch=False)
    try:
        response = user.get("/projects")
        assert response.status_code == 503
        assert response.json()["error"]["objects"] == ["table avatar_projects"]
    finally:
        hf_stack.sql("ALTER TABLE avatar_projects_gone RENAME TO avatar_projects", fetch=False)
    assert user.get("/projects").status_code == 200
    assert _ready(hf_stack)[0] == 200


def test_without_a_database_it_lives_but_is_not_ready(tmp_path):
    dead = f"postgresql://nobody:pw-never-logged-4f9c@127.0.0.1:{free_port()}/nothing"
    app = AppProcess(dead, tmp_path / "app.log", APP_DB_POOL_TIMEOUT="1").start(ready=False)
    try:
        assert app.process.poll() is None
        assert httpx.get(app.url + "/health").status_code == 200
        response = httpx.get(app.url + "/health/ready", timeout=10)
        assert response.status_code == 503
        assert response.json()["failed"] == ["database"]
        assert "check DATABASE_URL" in response.json()["message"]
        api = httpx.get(
            app.url + API + "/projects",
            timeout=10,
            headers={"Authorization": "Bearer acr_" + "x" * 43},
        )
        assert api.status_code == 503 and api.headers["Retry-After"] == "5"
        assert api.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
    finally:
        app.stop()
    assert "pw-never-logged" not in app.log()


def test_a_missing_grant_is_503_naming_the_privilege(hf_stack):
    user = hf_stack.user()
    role = local_env().app_role
    hf_stack.sql(f"REVOKE SELECT ON ai_models FROM {role}", fetch=False)
    try:
        response = user.get("/models")
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "DATABASE_PERMISSION"
        assert "ai_models" in error["message"] and "invoke doctor --env local" in error["message"]
    finally:
        hf_stack.sql(f"GRANT SELECT ON ai_models TO {role}", fetch=False)
    assert user.get("/models").status_code == 200


def run_app_with(env: dict) -> subprocess.CompletedProcess:
    """`python -m app` with only these variables: it must refuse to start."""
    return subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, capture_output=True,
                          text=True, check=False, env={"PATH": "/usr/bin:/bin", **env}, timeout=30)


def test_bad_configuration_stops_it_with_a_clear_message():
    result = run_app_with({"GENERATION_PROVIDER": "huggingface",
                           "DATABASE_URL": "postgresql://x@127.0.0.1/x"})
    assert result.returncode == 2
    assert "HUGGINGFACE_API_KEY" in result.stderr
    result = run_app_with({})
    assert result.returncode == 2 and "DATABASE_URL is not set" in result.stderr


def test_no_history_at_all_is_sent_to_doctor_not_deploy():
    """No shipshape.history: a new database (deploy fixes it) or one whose history table was
    dropped under its tables (deploy fails on CREATE TABLE; the baseline fixes it). The app
    cannot tell which, so it names doctor, which can."""
    from app.schema import version_problem

    problem = version_problem(None, "invoke deploy --env dev",
                              doctor_command="invoke doctor --env dev")
    assert problem.endswith("run `invoke doctor --env dev`")
    behind = {1: "expand", 2: "expand", 3: "expand"}
    assert version_problem(behind, "invoke deploy --env dev", 4,
                           doctor_command="invoke doctor --env dev").endswith(
        "run `invoke deploy --env dev`"
    )
