"""Structured logs: JSON lines with request ids; never a token, password or API key."""

from __future__ import annotations

import json

import httpx

from tests.app.conftest import API, DB_PASSWORD, HF_KEY, ISSUED_TOKENS


def test_logs_are_json_with_request_ids_and_no_secrets(stack, hf_stack):
    user = stack.user()
    project = user.project()
    response = user.post(
        f"/projects/{project['id']}/avatars/generate",
        json={"prompt": "a portrait"},
        headers={**user.headers, "X-Request-ID": "req-test-42"},
    )
    assert response.headers["X-Request-ID"] == "req-test-42"
    user.wait_generation(response.json()["generation"]["id"])
    generated = response.json()["generation"]["id"]
    wrong = "acr_" + "W" * 43
    httpx.get(stack.url + API + "/projects", headers={"Authorization": f"Bearer {wrong}"})
    httpx.get(
        stack.url + API + "/projects", headers={"Authorization": "Bearer hunter2-not-a-token"}
    )
    hf_user = hf_stack.user()
    hf_project = hf_user.project()
    failed = hf_user.post(
        f"/projects/{hf_project['id']}/avatars/generate", json={"prompt": "do fail"}
    )
    hf_user.wait_generation(failed.json()["generation"]["id"])
    assert (
        response.headers["X-Request-ID"] != httpx.get(stack.url + "/health").headers["X-Request-ID"]
    )

    for app in (stack.app, hf_stack.app):
        text = app.log()
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        assert lines and all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
        for secret in [*ISSUED_TOKENS, wrong, "hunter2-not-a-token", DB_PASSWORD, HF_KEY]:
            assert secret not in text, secret[:8]
    lines = [json.loads(line) for line in stack.app.log().splitlines()]
    tagged = [line for line in lines if line.get("requestId") == "req-test-42"]
    assert {line["msg"] for line in tagged} == {"generation queued", "request"}
    assert all(line["userId"] == user.id for line in tagged)
    worker = [line for line in lines if line.get("generationId") == generated]
    assert {line["msg"] for line in worker} >= {"generation processing", "generation completed"}
    assert any(line.get("queuedBy") == "req-test-42" for line in worker)
    startup = next(line for line in lines if line["msg"] == "avatar-creator started")
    assert "***" not in startup["database"] and "@127.0.0.1" in startup["database"]
