"""deploy's last gate: when the env has an app URL, /health/ready must answer 200."""

from __future__ import annotations

import pytest

from shipshape.errors import ProblemsFound
from shipshape.ops import pipeline
from shipshape.settings import load_environment
from shipshape.targets import Target
from tests.app.conftest import ROOT, free_port


def target(dsn, app_url):
    env = load_environment("local", overrides={"app_url": app_url}, config_dir=ROOT)
    return Target(env, dsn, "test")


def test_deploy_passes_the_app_gate_when_the_app_is_ready(stack):
    result = pipeline.deploy(target(stack.dsn, stack.url), ROOT / "sql")
    gates = {g.name: g.status for g in result.gates}
    assert gates["app"] == "ok" and gates["record"] == "ok"


def test_deploy_fails_the_app_gate_when_nothing_answers(stack):
    with pytest.raises(ProblemsFound) as caught:
        pipeline.deploy(target(stack.dsn, f"http://127.0.0.1:{free_port()}"), ROOT / "sql")
    assert caught.value.exit_code == 2
    assert "/health/ready" in str(caught.value)
    gates = {g.name: g.status for g in caught.value.result.gates}
    assert gates["verify"] == "ok" and gates["app"] == "failed"
    rows = stack.sql("SELECT result FROM shipshape.deployments ORDER BY id DESC LIMIT 1")
    assert rows == [("failed at app",)]
