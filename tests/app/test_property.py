"""Property-based: schemathesis generates requests from the OpenAPI document, valid and
invalid ones, and sends them to the real app (a uvicorn subprocess on real PostgreSQL)
as the demo user. No request may get a 5xx, and every response must be as documented:
its status, headers and body schema, a 2xx for valid input, a 4xx for invalid input.

Generated ids name nothing, so every valid request on a path with ids is sent a second
time with the ids of real resources of the demo user: the same fuzzed body against a
project that exists, and so on, or the success paths would never be fuzzed."""

from __future__ import annotations

import os

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from app import tokens
from app.config import Settings
from app.main import create_app
from tests.app.conftest import API, ISSUED_TOKENS

DEMO_EMAIL = "demo@avatar-creator.local"  # seeds/demo_users.yaml

# Loaded from the code at collection time: schemathesis's fixture-based loader
# (schemathesis.pytest.from_fixture) fails on pytest 9 (it sets Function._nodeid, which
# pytest 9 removed), and the app's URL is only known once the `stack` fixture runs.
# test_the_document_is_the_one_served checks that the running app serves this document.
DOCUMENT = create_app(Settings(database_url="postgresql://unused@127.0.0.1/unused")).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


class Demo:
    """The demo user's token and resources, as the API creates them."""

    def __init__(self, stack):
        with psycopg.connect(stack.admin_dsn) as conn:
            (user_id,) = conn.execute(
                "SELECT id FROM users WHERE email = %s", [DEMO_EMAIL]
            ).fetchone()
            # Each valid generation costs credits: without enough, a valid request would
            # be 402 and count as one the API wrongly refused.
            conn.execute('UPDATE users SET "creditBalance" = 1000000 WHERE id = %s', [user_id])
            token = tokens.issue(conn, user_id, "schemathesis")
        ISSUED_TOKENS.append(token)
        self.headers = {"Authorization": f"Bearer {token}"}
        self.client = stack.client
        self.project = self.project_id()
        self.avatar = self.avatar_id()
        generation = self.post(
            f"/projects/{self.project}/avatars/generate", {"prompt": "a portrait"}
        )
        self.generation = generation["generation"]["id"]

    def post(self, path: str, body: dict) -> dict:
        response = self.client.post(API + path, json=body, headers=self.headers)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def project_id(self) -> str:
        return self.post("/projects", {"name": "Fuzzed"})["project"]["id"]

    def avatar_id(self) -> str:
        body = {"name": "Fuzzed", "baseImageUrl": "/a.png"}
        return self.post(f"/projects/{self.project}/avatars", body)["avatar"]["id"]

    def ids(self, method: str) -> dict[str, str]:
        """Real ids; fresh ones for DELETE, which would leave the shared ones gone."""
        fresh = method.upper() == "DELETE"
        return {
            "project_id": self.project_id() if fresh else self.project,
            "avatar_id": self.avatar_id() if fresh else self.avatar,
            "generation_id": self.generation,
            "name": "7-64x64.png",
        }


@pytest.fixture(scope="module")
def demo(stack):
    return Demo(stack)


def test_the_document_is_the_one_served(stack):
    assert stack.client.get("/openapi.json").json() == DOCUMENT


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,  # no timing assertion: only what the app answers counts
    database=None,  # no .hypothesis/ folder in the work tree
    derandomize=bool(os.environ.get("CI")),  # CI: the same cases each run
    suppress_health_check=list(HealthCheck),
)
def test_api(case, stack, demo):
    case.call_and_validate(base_url=stack.url, headers=demo.headers, timeout=30)
    valid = case.meta is not None and case.meta.generation.mode.name == "POSITIVE"
    if valid and case.path_parameters:
        ids = demo.ids(case.method)
        case.path_parameters.update({k: ids[k] for k in case.path_parameters})
        case.call_and_validate(base_url=stack.url, headers=demo.headers, timeout=30)
