"""The OpenAPI document lists, for every operation, exactly the statuses the app answers,
and every answer's body matches the schema documented for its status.

The statuses an operation can answer are stated here independently of the document: a
few rules that hold for whole groups of routes (413 from the middleware, 401 where a token
is needed, 503 where the database is used) and one table of route-specific ones. For each
(operation, status) the test provokes it for real, then compares the provoked set with the
documented one, so both a status the document forgot and one it claims in vain fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from urllib.parse import quote

import httpx
import jsonschema_rs
import pytest

from app.main import MAX_BODY
from tests.app.conftest import API

NUL_SEGMENT = quote("a\u0000b", safe="")
BIG = b"x" * (MAX_BODY + 1)
PUBLIC = {"/health", "/health/ready", "/health/models", API + "/health/models"}
PUBLIC_PREFIXES = (API + "/images/",)
# Routes that read the database whatever the token: 503 when it is broken.
HEALTH_WITH_DATABASE = {"/health/ready", "/health/models", API + "/health/models"}


class World:
    """One user with a project, an avatar and a generation; another with no credits."""

    def __init__(self, stack):
        self.stack = stack
        self.user = stack.user()
        self.poor = stack.user(credits=0)
        self.project = self.user.project()["id"]
        self.avatar = self.upload(self.project)
        self.generation = self.user.post(
            f"/projects/{self.project}/avatars/generate", json={"prompt": "a portrait"}
        ).json()["generation"]["id"]
        self.image = "1-64x64.png"

    def upload(self, project: str) -> str:
        response = self.user.post(
            f"/projects/{project}/avatars", json={"name": "A", "baseImageUrl": "/a.png"}
        )
        assert response.status_code == 201, response.text
        return response.json()["avatar"]["id"]

    def send(self, method: str, path: str, who=None, **kwargs) -> httpx.Response:
        headers = {**(who.headers if who else {}), **kwargs.pop("headers", {})}
        return self.stack.client.request(method, path, headers=headers, **kwargs)


Provoke = Callable[[World], httpx.Response]
P, A, G = (
    API + "/projects/{project_id}",
    API + "/avatars/{avatar_id}",
    API + "/generations/{generation_id}",
)


def route_specific() -> dict[tuple[str, str], dict[int, Provoke]]:
    """Per operation: the statuses beyond 401/413/503, each with how to get it."""
    gen = API + "/projects/{project_id}/avatars/generate"
    upload = API + "/projects/{project_id}/avatars"
    image = API + "/images/placeholder/{name}"
    return {
        ("get", "/health"): {200: lambda w: w.send("GET", "/health")},
        ("get", "/health/ready"): {200: lambda w: w.send("GET", "/health/ready")},
        ("get", "/health/models"): {200: lambda w: w.send("GET", "/health/models")},
        ("get", API + "/health/models"): {200: lambda w: w.send("GET", API + "/health/models")},
        ("get", API + "/me"): {200: lambda w: w.send("GET", API + "/me", w.user)},
        ("get", API + "/models"): {200: lambda w: w.send("GET", API + "/models", w.user)},
        ("get", API + "/projects"): {
            200: lambda w: w.send("GET", API + "/projects", w.user),
            422: lambda w: w.send("GET", API + "/projects", w.user, params={"offset": 10**20}),
        },
        ("post", API + "/projects"): {
            201: lambda w: w.send("POST", API + "/projects", w.user, json={"name": "P"}),
            422: lambda w: w.send("POST", API + "/projects", w.user, json={"name": ""}),
        },
        ("get", P): {
            200: lambda w: w.send("GET", f"{API}/projects/{w.project}", w.user),
            404: lambda w: w.send("GET", f"{API}/projects/nope", w.user),
            422: lambda w: w.send("GET", f"{API}/projects/{NUL_SEGMENT}", w.user),
        },
        **{
            (method, P): {
                200: lambda w, m=method: w.send(
                    m.upper(), f"{API}/projects/{w.project}", w.user, json={"name": "Q"}
                ),
                404: lambda w, m=method: w.send(
                    m.upper(), f"{API}/projects/nope", w.user, json={"name": "Q"}
                ),
                422: lambda w, m=method: w.send(
                    m.upper(), f"{API}/projects/{w.project}", w.user, json={}
                ),
            }
            for method in ("put", "patch")
        },
        ("delete", P): {
            200: lambda w: w.send("DELETE", f"{API}/projects/{w.user.project()['id']}", w.user),
            404: lambda w: w.send("DELETE", f"{API}/projects/nope", w.user),
            422: lambda w: w.send("DELETE", f"{API}/projects/{NUL_SEGMENT}", w.user),
        },
        ("post", upload): {
            201: lambda w: w.send(
                "POST",
                f"{API}/projects/{w.project}/avatars",
                w.user,
                json={"name": "B", "baseImageUrl": "https://img.test/b.png"},
            ),
            404: lambda w: w.send(
                "POST",
                f"{API}/projects/nope/avatars",
                w.user,
                json={"name": "B", "baseImageUrl": "https://img.test/b.png"},
            ),
            422: lambda w: w.send(
                "POST", f"{API}/projects/{w.project}/avatars", w.user, json={"name": "B"}
            ),
        },
        ("get", A): {
            200: lambda w: w.send("GET", f"{API}/avatars/{w.avatar}", w.user),
            404: lambda w: w.send("GET", f"{API}/avatars/nope", w.user),
            422: lambda w: w.send("GET", f"{API}/avatars/{NUL_SEGMENT}", w.user),
        },
        ("delete", A): {
            200: lambda w: w.send("DELETE", f"{API}/avatars/{w.upload(w.project)}", w.user),
            404: lambda w: w.send("DELETE", f"{API}/avatars/nope", w.user),
            422: lambda w: w.send("DELETE", f"{API}/avatars/{NUL_SEGMENT}", w.user),
        },
        ("post", gen): {
            200: lambda w: w.send(
                "POST",
                f"{API}/projects/{w.project}/avatars/generate",
                w.user,
                json={"prompt": "a portrait"},
            ),
            402: lambda w: w.send(
                "POST",
                f"{API}/projects/{w.poor.project()['id']}/avatars/generate",
                w.poor,
                json={"prompt": "a portrait"},
            ),
            404: lambda w: w.send(
                "POST",
                f"{API}/projects/nope/avatars/generate",
                w.user,
                json={"prompt": "a portrait"},
            ),
            422: lambda w: w.send(
                "POST",
                f"{API}/projects/{w.project}/avatars/generate",
                w.user,
                json={"prompt": "a"},
            ),
        },
        ("get", G): {
            200: lambda w: w.send("GET", f"{API}/generations/{w.generation}", w.user),
            404: lambda w: w.send("GET", f"{API}/generations/nope", w.user),
            422: lambda w: w.send("GET", f"{API}/generations/{NUL_SEGMENT}", w.user),
        },
        ("get", image): {
            200: lambda w: w.send("GET", f"{API}/images/placeholder/{w.image}"),
            404: lambda w: w.send("GET", f"{API}/images/placeholder/1-13x13.png"),
            422: lambda w: w.send("GET", f"{API}/images/placeholder/{NUL_SEGMENT}"),
        },
    }


def needs_token(path: str) -> bool:
    return path not in PUBLIC and not path.startswith(PUBLIC_PREFIXES)


def concrete(path: str) -> str:
    """A path of the operation with made-up ids: for statuses answered before any lookup."""
    return path.replace("{name}", "1-64x64.png").format_map(
        {k: "x" for k in ("project_id", "avatar_id", "generation_id")}
    )


def expected_statuses(method: str, path: str) -> set[int]:
    statuses = set(route_specific()[(method, path)]) | {413}
    if needs_token(path):
        statuses |= {401, 503}
    if path in HEALTH_WITH_DATABASE:
        statuses.add(503)
    return statuses


@pytest.fixture(scope="module")
def document(stack):
    response = stack.client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document):
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def check_body(document, operation, response: httpx.Response) -> None:
    """The response's body is valid against the schema documented for its status."""
    documented = operation["responses"][str(response.status_code)]
    content = documented.get("content", {})
    media = response.headers["content-type"].split(";")[0]
    assert media in content, (media, list(content))
    schema = content[media].get("schema")
    if media != "application/json":
        assert response.content, "an empty image"
        return
    assert schema, f"{response.status_code} has no documented schema"
    validator = jsonschema_rs.validator_for(
        {**schema, "components": document["components"]}, validate_formats=True
    )
    errors = [e.message for e in validator.iter_errors(response.json())]
    assert not errors, (response.status_code, errors[:5], response.text[:400])


def test_every_operation_is_in_the_table(document):
    documented = {(method, path) for method, path, _ in operations(document)}
    assert documented == set(route_specific())


def test_documented_statuses_are_the_ones_the_app_answers(document):
    mismatches = {}
    for method, path, operation in operations(document):
        documented = {int(status) for status in operation["responses"]}
        expected = expected_statuses(method, path)
        if documented != expected:
            mismatches[f"{method.upper()} {path}"] = {
                "undocumented": sorted(expected - documented),
                "never answered": sorted(documented - expected),
            }
    assert not mismatches, mismatches


def test_each_status_is_provoked_and_its_body_is_as_documented(stack, document):
    world = World(stack)
    provoked = 0
    for method, path, operation in operations(document):
        cases = dict(route_specific()[(method, path)])
        cases[413] = lambda w, m=method, p=path: w.send(m.upper(), concrete(p), content=BIG)
        if needs_token(path):
            cases[401] = lambda w, m=method, p=path: w.send(m.upper(), concrete(p), json={})
        for status, provoke in sorted(cases.items()):
            response = provoke(world)
            assert response.status_code == status, (method, path, response.text[:300])
            check_body(document, operation, response)
            provoked += 1
    assert provoked >= 50


def test_503_is_provoked_where_documented_and_as_documented(hf_stack, document):
    """With the token and model tables gone, every route that reads the database says so."""
    token = {"Authorization": "Bearer acr_" + uuid.uuid4().hex + "x" * 11}
    hf_stack.sql("ALTER TABLE api_tokens RENAME TO api_tokens_gone", fetch=False)
    hf_stack.sql("ALTER TABLE ai_models RENAME TO ai_models_gone", fetch=False)
    try:
        seen = set()
        for method, path, operation in operations(document):
            if 503 not in expected_statuses(method, path):
                continue
            body = {"name": "x", "prompt": "a portrait"} if method in ("post", "put") else None
            response = hf_stack.client.request(
                method.upper(), concrete(path), headers=token, json=body
            )
            assert response.status_code == 503, (method, path, response.text[:300])
            check_body(document, operation, response)
            seen.add((method, path))
        assert len(seen) >= 15
    finally:
        hf_stack.sql("ALTER TABLE ai_models_gone RENAME TO ai_models", fetch=False)
        hf_stack.sql("ALTER TABLE api_tokens_gone RENAME TO api_tokens", fetch=False)
    assert hf_stack.client.get("/health/ready").status_code == 200
