"""Input that PostgreSQL cannot store or compare is refused at the door: a NUL character
in any string (PostgreSQL text cannot hold one), a string that is not valid Unicode, and a
number beyond what its column or clause takes are 422 with field errors, never a 500.

The inputs come from the OpenAPI document, so a route or field added later is covered."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.app.conftest import API

NUL = "\u0000"
# A valid body per operation: each case changes one field of it.
VALID_BODIES = {
    ("post", "/projects"): {"name": "Valid"},
    ("put", "/projects/{project_id}"): {"name": "Valid"},
    ("patch", "/projects/{project_id}"): {"name": "Valid"},
    ("post", "/projects/{project_id}/avatars"): {
        "name": "Valid",
        "baseImageUrl": "https://img.test/a.png",
    },
    ("post", "/projects/{project_id}/avatars/generate"): {"prompt": "a portrait"},
}


@pytest.fixture(scope="module")
def openapi(stack):
    return stack.client.get("/openapi.json").json()


def resolve(document: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def accepts_string(document: dict, schema: dict) -> bool:
    schema = resolve(document, schema)
    options = schema.get("anyOf", [schema])
    return any(resolve(document, option).get("type") == "string" for option in options)


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def string_body_fields(document: dict, operation: dict) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return []
    schema = resolve(document, content["application/json"]["schema"])
    return sorted(
        name for name, prop in schema["properties"].items() if accepts_string(document, prop)
    )


def with_nul(field: str, valid: str | None) -> str:
    if field.endswith("Url"):
        return f"https://img.test/a{NUL}.png"
    text = valid or "abcd"
    return text[:2] + NUL + text[2:]


def assert_field_error(response, field: str, case) -> None:
    assert response.status_code == 422, (case, response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR", case
    assert [f["field"] for f in error["fields"]] == [field], (case, error)


def test_every_string_in_every_body_refuses_nul(stack, openapi):
    user = stack.user()
    project = user.project()
    tried = set()
    for method, path, operation in operations(openapi):
        fields = string_body_fields(openapi, operation)
        if not fields:
            continue
        short = path.removeprefix(API)
        valid = VALID_BODIES[(method, short)]  # a new route with a body needs an entry
        url = short.replace("{project_id}", project["id"])
        for field in fields:
            body = {**valid, field: with_nul(field, valid.get(field))}
            response = user.request(method.upper(), url, json=body)
            assert_field_error(response, field, (method, short, field))
            assert "\\u0000" in response.json()["error"]["fields"][0]["message"]
            tried.add(field)
    # The API's string fields, as a floor: the document must not have lost them.
    assert {
        "name",
        "description",
        "prompt",
        "baseImageUrl",
        "thumbnailUrl",
        "personaName",
        "personaPersonality",
        "personaBackground",
        "gender",
        "style",
    } <= tried
    assert user.get("/projects").json()[0]["avatars"] == []
    assert len(user.get("/projects").json()) == 1  # nothing was created
    assert stack.balance(user.id) == 1000  # nor charged


def test_every_path_parameter_refuses_nul(stack, openapi):
    user = stack.user()
    tried = []
    for method, path, operation in operations(openapi):
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        for name in names:
            url = path.replace("{" + name + "}", quote(f"ab{NUL}cd", safe=""))
            body = VALID_BODIES.get((method, path.removeprefix(API)))
            response = stack.client.request(method.upper(), url, json=body, headers=user.headers)
            assert_field_error(response, name, (method, path))
            tried.append((method, path))
    assert len(tried) >= 10, tried


@pytest.mark.parametrize(
    "params, field",
    [
        ({"offset": 10**20}, "offset"),  # beyond bigint: OFFSET cannot take it
        ({"offset": 2**63}, "offset"),
        ({"limit": 10**20}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": f"1{NUL}"}, "offset"),
        ({"limit": "1e3"}, "limit"),
    ],
)
def test_query_numbers_out_of_range_are_422(stack, params, field):
    user = stack.user()
    assert_field_error(user.get("/projects", params=params), field, params)


def test_the_largest_offset_is_served(stack):
    user = stack.user()
    user.project()
    response = user.get("/projects", params={"offset": 2**63 - 1})
    assert response.status_code == 200 and response.json() == []


@pytest.mark.parametrize(
    "raw, field",
    [
        (b'{"prompt": "a portrait", "seed": 100000000000000000000}', "seed"),
        (b'{"prompt": "a portrait", "seed": 1e400}', "seed"),
        (b'{"prompt": "a portrait", "personaAge": 100000000000000000000}', "personaAge"),
        (b'{"prompt": "a portrait", "personaAge": -1e400}', "personaAge"),
        (b'{"prompt": "a portrait \\ud800"}', "prompt"),  # a lone surrogate: not UTF-8
        (b'{"prompt": "a portrait", "name": "\\udfff"}', "name"),
    ],
)
def test_body_numbers_and_strings_postgresql_cannot_take_are_422(stack, raw, field):
    user = stack.user()
    project = user.project()
    response = user.post(
        f"/projects/{project['id']}/avatars/generate",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert_field_error(response, field, raw)
    assert stack.balance(user.id) == 1000


def test_other_control_characters_are_kept(stack):
    user = stack.user()
    name = "tab\there, bell\u0007, emoji \U0001f600"
    created = user.post("/projects", json={"name": name})
    assert created.status_code == 201, created.text
    assert (
        user.get(f"/projects/{created.json()['project']['id']}").json()["project"]["name"] == name
    )


@pytest.mark.parametrize(
    "raw",
    [b'{"name": "\xff\xfe"}', b"\xff" * 10, b"[" * 100_000 + b"]" * 100_000],
    ids=["not-utf8-string", "not-utf8", "nested-too-deep"],
)
def test_a_body_json_cannot_read_is_422_like_invalid_json(stack, raw):
    user = stack.user()
    response = user.post("/projects", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["fields"] == [
        {"field": "body", "message": "the body is not valid JSON", "type": "json_invalid"}
    ]
    assert user.get("/projects").json() == []


TRICKY = [
    "abc",
    " ab ",
    "\u00a0ab",
    "a\x1cb",
    "\x1cab\x1c",
    "\u3000x\u3000y",
    "ab\n",
    "\t\n",
    "x" * 200,
    "x" * 200 + " ",  # lengths count the string as sent, before trimming
    "/a.png",
    " https://img.test/a.png ",
    "ftp://img.test/a.png",
]


@pytest.mark.parametrize(
    "method, path, base, field",
    [
        ("post", "/projects", {}, "name"),
        ("post", "/projects/{project_id}/avatars/generate", {}, "prompt"),
        ("post", "/projects/{project_id}/avatars", {"name": "A"}, "baseImageUrl"),
    ],
)
def test_the_document_and_the_app_agree_on_strings(stack, openapi, method, path, base, field):
    """The documented pattern and lengths accept exactly what the app accepts: blanks are
    what str.strip() takes off, whatever the regex engine takes \\s to mean."""
    import jsonschema_rs

    operation = openapi["paths"][API + path][method]
    body_schema = resolve(
        openapi, operation["requestBody"]["content"]["application/json"]["schema"]
    )
    validator = jsonschema_rs.validator_for(body_schema["properties"][field])
    user = stack.user(credits=10**6)
    url = path.replace("{project_id}", user.project()["id"])
    for value in TRICKY:
        response = user.request(method.upper(), url, json={**base, field: value})
        documented_ok = validator.is_valid(value)
        assert (response.status_code < 300) == documented_ok, (value, response.text[:200])
        if documented_ok:
            stored = response.json()
            stored = stored.get("project") or stored.get("avatar") or stored["generation"]
            if field in stored:
                assert stored[field] == value.strip(), value
