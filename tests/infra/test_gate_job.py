"""The Kubernetes gate Job's pod, run as the pod runs it, against real PostgreSQL: the
manifest the program renders (under mocks) is taken apart, and each container's command
runs in order with the container's environment (Secret references resolved from the
Secret the program renders, the DSN pointed at a test database), from a directory laid
out as infra/gate.Dockerfile lays out the image (tasks.py and sql/, no stack file)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import psycopg
import pytest
from psycopg import sql

from tests.conftest import ROOT, create_database, drop_database, dsn_for
from tests.infra.harness import TEST_SECRETS, run_stack, stack_config
from tests.infra.test_kubernetes import CONTRACT, GATE, JOB, SECRET, pod

APP_PASSWORD = TEST_SECRETS["shipshape:app_db_password"]


@pytest.fixture
def database(admin_dsn):
    name = create_database(admin_dsn)
    role = f"ss_job_{uuid.uuid4().hex[:10]}"  # roles are cluster-wide: one of this test's own
    yield dsn_for(admin_dsn, name), role
    drop_database(admin_dsn, name)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def image_dir(tmp_path):
    """The image's working directory: what infra/gate.Dockerfile copies, nothing more."""
    workdir = tmp_path / "srv"
    workdir.mkdir()
    shutil.copy(ROOT / "tasks.py", workdir / "tasks.py")
    shutil.copytree(ROOT / "sql", workdir / "sql")
    return workdir


def container_env(container: dict, secret_data: dict, dsn: str, state_dir) -> dict:
    env = {"PATH": os.environ["PATH"], "HOME": str(state_dir)}
    for entry in container["env"]:
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            value = secret_data[ref["key"]]
        else:
            value = entry["value"]
        env[entry["name"]] = value
    # The Secret holds the in-cluster DSN (avatar-db-rw.<namespace>.svc); here the database
    # is the test server's. Everything else is the manifest's, unchanged.
    env["DATABASE_URL"] = dsn
    env["SHIPSHAPE_STATE_DIR"] = str(state_dir)
    return env


def run(container: dict, env: dict, cwd) -> subprocess.CompletedProcess:
    command = list(container["command"])
    executable = {"invoke": [sys.executable, "-m", "invoke"], "python": [sys.executable]}[command[0]]
    return subprocess.run(executable + command[1:], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240, check=False)


def rendered_job(role: str, job: str = GATE):
    config, secret_keys = stack_config("dev-k8s", file="Pulumi.prod-k8s.yaml", set_={
        "shipshape:profile": "dev", "shipshape:app_role": role,
        "shipshape:image_registry": "registry.example.com/shipshape",
        "shipshape:generation_provider": "placeholder", "shipshape:protect_data": "false"})
    recorded = run_stack("dev-k8s", config, secret_keys)
    secret_data = recorded.one(SECRET, f"{job}-credentials").inputs["stringData"]
    return pod(recorded.one(JOB, job)), secret_data


def test_the_gate_pod_migrates_seeds_verifies_then_lets_the_app_log_in(database, image_dir, tmp_path):
    dsn, role = database
    spec, secret_data = rendered_job(role)
    assert secret_data["APP_DB_PASSWORD"] == APP_PASSWORD
    steps = spec["initContainers"] + spec["containers"]  # the order the kubelet runs them
    assert [s["name"] for s in steps] == ["deploy", "app-login"]
    for step in steps:
        result = run(step, container_env(step, secret_data, dsn, tmp_path / "state"), image_dir)
        assert result.returncode == 0, (step["name"], result.stdout, result.stderr)
        assert APP_PASSWORD not in result.stdout + result.stderr
        assert "su-Pa55" not in result.stdout + result.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT result FROM shipshape.deployments").fetchall() == [("ok",)]
        assert conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [role]).fetchone() == (True,)
        # the prod-k8s file's seed sets, through SHIPSHAPE_SEED_SETS: reference only, no demo user
        assert conn.execute("SELECT count(*) FROM ai_models").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_a_failing_deploy_fails_the_pod_before_the_app_can_log_in(database, image_dir, tmp_path):
    dsn, role = database
    spec, secret_data = rendered_job(role)
    (image_dir / "sql" / "checks" / "always_fails.sql.j2").write_text(
        "-- description: a data invariant that does not hold\n-- severity: error\n"
        "-- fix: fix the data\nSELECT 'users' AS object\n")
    (deploy,) = spec["initContainers"]
    result = run(deploy, container_env(deploy, secret_data, dsn, tmp_path / "state"), image_dir)
    assert result.returncode == 2, result.stderr  # verify's exit code: the pod fails, the Job fails
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [role]).fetchone() == (False,)


def add_contract_migration(image_dir) -> None:
    """The next release's tree: 0013 removes what release 0012 still reads."""
    directory = image_dir / "sql" / "migrations" / "0013_users_contracted"
    directory.mkdir()
    (directory / "migrate.sql.j2").write_text(
        "-- shipshape:phase contract\nCOMMENT ON TABLE users IS 'contracted';\n")
    (directory / "rollback.sql.j2").write_text("COMMENT ON TABLE users IS NULL;\n")


def applied(dsn) -> list[int]:
    with psycopg.connect(dsn) as conn:
        return [v for (v,) in conn.execute(
            "SELECT version FROM shipshape.history WHERE success ORDER BY version")]


def test_the_contract_pod_applies_what_the_expand_gate_left(database, image_dir, tmp_path):
    dsn, role = database
    add_contract_migration(image_dir)
    gate, gate_secret = rendered_job(role)
    for step in gate["initContainers"] + gate["containers"]:
        result = run(step, container_env(step, gate_secret, dsn, tmp_path / "state"), image_dir)
        assert result.returncode == 0, (step["name"], result.stdout, result.stderr)
    assert 13 not in applied(dsn) and 12 in applied(dsn)  # expand stops before the contract
    spec, secret_data = rendered_job(role, CONTRACT)
    (deploy,) = spec["containers"]
    result = run(deploy, container_env(deploy, secret_data, dsn, tmp_path / "state"), image_dir)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert 13 in applied(dsn)
    assert "su-Pa55" not in result.stdout + result.stderr


def test_the_contract_pod_exits_3_while_an_old_pod_is_registered(database, image_dir, tmp_path):
    dsn, role = database
    add_contract_migration(image_dir)
    gate, gate_secret = rendered_job(role)
    (deploy,) = gate["initContainers"]
    assert run(deploy, container_env(deploy, gate_secret, dsn, tmp_path / "state"),
               image_dir).returncode == 0
    with psycopg.connect(dsn) as conn:  # a terminating pod of release 0012, still heartbeating
        conn.execute("INSERT INTO shipshape.app_instances (instance, release, host) "
                     "VALUES ('avatar-creator-old', 12, 'node-1')")
    spec, secret_data = rendered_job(role, CONTRACT)
    (deploy,) = spec["containers"]
    result = run(deploy, container_env(deploy, secret_data, dsn, tmp_path / "state"), image_dir)
    # exit 3 is the one exit the Job's podFailurePolicy retries (test_kubernetes.py)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert "avatar-creator-old" in result.stderr
    assert "`invoke deploy --env dev-k8s --phase contract`" in result.stderr
    assert 13 not in applied(dsn)


def test_app_login_without_its_secret_says_what_is_missing():
    env = {"PATH": os.environ["PATH"], "SHIPSHAPE_PROFILE": "dev"}
    result = subprocess.run([sys.executable, "-m", "shipshape.pulumi_gate.gate", "app-login"], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 5
    assert "DATABASE_URL and APP_DB_PASSWORD" in result.stderr and "Traceback" not in result.stderr
