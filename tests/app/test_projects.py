"""Projects: CRUD with the incident record's status codes and bodies, ownership, cascade."""

from __future__ import annotations

import httpx

from tests.app.conftest import API


def test_create_answers_201_like_incident_2(stack):
    user = stack.user()
    response = user.post("/projects", json={"name": "Test Project", "description": "Testing"})
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Project created successfully"
    project = body["project"]
    assert project["name"] == "Test Project" and project["description"] == "Testing"
    assert project["userId"] == user.id and project["avatars"] == []
    assert project["id"] and project["createdAt"] and project["updatedAt"]


def test_list_read_update_delete(stack):
    user = stack.user()
    assert user.get("/projects").json() == []
    first, second = user.project("First"), user.project("Second")
    listed = user.get("/projects")
    assert listed.status_code == 200
    assert [p["name"] for p in listed.json()] == ["Second", "First"]  # newest first
    assert [p["name"] for p in user.get("/projects", params={"limit": 1}).json()] == ["Second"]

    read = user.get(f"/projects/{first['id']}")
    assert read.status_code == 200 and read.json()["project"]["name"] == "First"

    updated = user.put(f"/projects/{first['id']}", json={"description": "new words"})
    assert updated.status_code == 200
    assert updated.json()["project"]["description"] == "new words"
    assert updated.json()["project"]["name"] == "First"  # untouched
    assert updated.json()["project"]["updatedAt"] > first["updatedAt"]
    patched = user.request("PATCH", f"/projects/{first['id']}", json={"name": "Renamed"})
    assert patched.status_code == 200 and patched.json()["project"]["name"] == "Renamed"

    deleted = user.delete(f"/projects/{second['id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {
        "success": True,
        "message": "Project deleted successfully",
        "deletedAvatars": 0,
    }
    assert user.get(f"/projects/{second['id']}").status_code == 404
    assert [p["name"] for p in user.get("/projects").json()] == ["Renamed"]


def test_unknown_project_is_404_on_every_route(stack):
    user = stack.user()
    for method, path, body in [
        ("GET", "/projects/nope", None),
        ("PUT", "/projects/nope", {"name": "x"}),
        ("DELETE", "/projects/nope", None),
        ("POST", "/projects/nope/avatars", {"name": "a", "baseImageUrl": "https://x.test/a.png"}),
        ("POST", "/projects/nope/avatars/generate", {"prompt": "a portrait"}),
    ]:
        response = user.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        error = response.json()["error"]
        assert error["code"] == "PROJECT_NOT_FOUND" and "nope" in error["message"]
    assert user.get("/avatars/nope").json()["error"]["code"] == "AVATAR_NOT_FOUND"
    assert user.delete("/avatars/nope").status_code == 404
    assert user.get("/generations/nope").json()["error"]["code"] == "GENERATION_NOT_FOUND"


def test_a_user_cannot_see_or_touch_another_users_project(stack):
    alice, bob = stack.user(), stack.user()
    project = alice.project("Alice's")
    avatar = alice.post(
        f"/projects/{project['id']}/avatars",
        json={"name": "A", "baseImageUrl": "https://img.test/a.png"},
    ).json()["avatar"]
    # Bob gets 404 (not 403: he does not even learn that it exists) ...
    assert bob.get(f"/projects/{project['id']}").status_code == 404
    assert bob.put(f"/projects/{project['id']}", json={"name": "mine"}).status_code == 404
    assert bob.delete(f"/projects/{project['id']}").status_code == 404
    assert (
        bob.post(
            f"/projects/{project['id']}/avatars",
            json={"name": "B", "baseImageUrl": "https://img.test/b.png"},
        ).status_code
        == 404
    )
    assert (
        bob.post(
            f"/projects/{project['id']}/avatars/generate", json={"prompt": "steal credits"}
        ).status_code
        == 404
    )
    assert bob.get(f"/avatars/{avatar['id']}").status_code == 404
    assert bob.delete(f"/avatars/{avatar['id']}").status_code == 404
    assert bob.get("/projects").json() == []
    assert stack.balance(bob.id) == 1000
    # ... and Alice's project is intact.
    mine = alice.get(f"/projects/{project['id']}").json()["project"]
    assert mine["name"] == "Alice's" and len(mine["avatars"]) == 1


def test_deleting_a_project_deletes_its_avatars_and_generations(stack):
    user = stack.user()
    project = user.project()
    other = user.project("Keep me")
    for i in range(3):
        assert (
            user.post(
                f"/projects/{project['id']}/avatars",
                json={"name": f"A{i}", "baseImageUrl": "https://img.test/a.png"},
            ).status_code
            == 201
        )
    kept = user.post(
        f"/projects/{other['id']}/avatars",
        json={"name": "K", "baseImageUrl": "https://img.test/k.png"},
    ).json()["avatar"]
    generation = user.post(
        f"/projects/{project['id']}/avatars/generate", json={"prompt": "a portrait"}
    ).json()["generation"]
    user.wait_generation(generation["id"])
    assert len(user.get(f"/projects/{project['id']}").json()["project"]["avatars"]) == 4

    response = user.delete(f"/projects/{project['id']}")
    assert response.status_code == 200 and response.json()["deletedAvatars"] == 4
    counts = stack.sql(
        'SELECT (SELECT count(*) FROM avatars WHERE "projectId" = %(p)s), '
        '(SELECT count(*) FROM avatar_generations WHERE "projectId" = %(p)s)',
        {"p": project["id"]},
    )
    assert counts == [(0, 0)]
    assert user.get(f"/avatars/{kept['id']}").status_code == 200
    assert user.get(f"/generations/{generation['id']}").status_code == 404


def test_bad_bodies_are_422_with_field_errors(stack):
    user = stack.user()
    cases = [
        ({}, {"name"}),
        ({"name": ""}, {"name"}),
        ({"name": "   "}, {"name"}),
        ({"name": "x" * 201}, {"name"}),
        ({"name": 5}, {"name"}),
        ({"name": "ok", "invalidField": 1}, {"invalidField"}),  # the troubleshooting guide's
    ]
    for body, fields in cases:
        response = user.post("/projects", json=body)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert {f["field"] for f in error["fields"]} == fields, (body, error)
    not_json = user.post(
        "/projects", content=b"{nope", headers={**user.headers, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    assert not_json.json()["error"]["fields"][0]["message"] == "the body is not valid JSON"
    project = user.project()
    empty_update = user.put(f"/projects/{project['id']}", json={})
    assert empty_update.status_code == 422
    null_name = user.put(f"/projects/{project['id']}", json={"name": None})
    assert null_name.status_code == 422
    assert [f["field"] for f in null_name.json()["error"]["fields"]] == ["name"]
    bad_query = user.get("/projects", params={"limit": 0})
    assert bad_query.status_code == 422
    assert bad_query.json()["error"]["fields"][0]["field"] == "limit"


def test_auth_is_required_and_checked(stack):
    user = stack.user()
    url = stack.url + API + "/projects"
    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {user.token}"},
        "empty": {"Authorization": "Bearer"},
        "garbage": {"Authorization": "Bearer not-a-token"},
        "unknown": {"Authorization": "Bearer acr_" + "x" * 43},
    }
    for name, headers in cases.items():
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "UNAUTHORIZED"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert httpx.post(url, json={"name": "x"}).status_code == 401
    # A revoked token stops working at once.
    stack.sql(
        'UPDATE api_tokens SET "revokedAt" = now() WHERE "userId" = %s', [user.id], fetch=False
    )
    assert user.get("/projects").status_code == 401
    # So does an expired one; tokens are stored hashed, never in clear.
    other = stack.user()
    rows = stack.sql(
        'SELECT "tokenHash", "tokenPrefix" FROM api_tokens WHERE "userId" = %s', [other.id]
    )
    assert (
        rows[0][0] != other.token and len(rows[0][0]) == 64 and other.token.startswith(rows[0][1])
    )
    assert other.get("/projects").status_code == 200
    stack.sql(
        'UPDATE api_tokens SET "expiresAt" = now() - interval \'1 second\' WHERE "userId" = %s',
        [other.id],
        fetch=False,
    )
    assert other.get("/projects").status_code == 401


def test_unknown_routes_and_methods(stack):
    user = stack.user()
    missing = user.get("/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    wrong = user.request("PATCH", "/models")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert wrong.headers["Allow"] == "GET"
    # Allow names every method of the path, whichever route matched first.
    for path, allowed in [
        ("/projects", "GET, POST"),
        ("/projects/x", "DELETE, GET, PATCH, PUT"),
        ("/projects/x/avatars", "POST"),
    ]:
        response = user.request("OPTIONS", path)
        assert response.status_code == 405 and response.headers["Allow"] == allowed, path
        assert allowed in response.json()["error"]["message"]
