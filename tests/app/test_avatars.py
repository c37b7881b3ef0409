"""Uploading an avatar (metadata and image URL), reading and deleting it."""

from __future__ import annotations


def test_upload_read_delete(stack):
    user = stack.user()
    project = user.project()
    body = {
        "name": "Maya",
        "baseImageUrl": "https://cdn.example.test/maya.png",
        "thumbnailUrl": "https://cdn.example.test/maya-thumb.png",
        "personaName": "Maya Chen",
        "personaAge": 34,
        "personaPersonality": "Visionary, pragmatic and direct",
        "personaBackground": "Founded a climate-tech startup",
        "gender": "female",
        "ageRange": "30-40",
        "hairColor": "black",
        "style": "business",
    }
    response = user.post(f"/projects/{project['id']}/avatars", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["message"] == "Avatar uploaded successfully"
    avatar = response.json()["avatar"]
    for key, value in body.items():
        assert avatar[key] == value, key
    assert avatar["sourceType"] == "uploaded" and avatar["usageCount"] == 0
    assert avatar["projectId"] == project["id"] and avatar["userId"] == user.id
    assert len(avatar) == 26  # every column of avatars (incident 3's 26)

    assert user.get(f"/avatars/{avatar['id']}").json()["avatar"] == avatar
    in_project = user.get(f"/projects/{project['id']}").json()["project"]
    assert in_project["avatars"] == [avatar] and in_project["avatarCount"] == 1
    assert stack.sql(
        'SELECT action, "appId" FROM avatar_usage_history WHERE "avatarId" = %s', [avatar["id"]]
    ) == [("uploaded", "avatar-creator")]

    data_url = "data:image/png;base64,iVBORw0KGgo="
    second = user.post(
        f"/projects/{project['id']}/avatars", json={"name": "B", "baseImageUrl": data_url}
    )
    assert second.status_code == 201 and second.json()["avatar"]["baseImageUrl"] == data_url

    deleted = user.delete(f"/avatars/{avatar['id']}")
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    assert user.get(f"/avatars/{avatar['id']}").status_code == 404
    assert user.get(f"/projects/{project['id']}").json()["project"]["avatarCount"] == 1


def test_upload_validation(stack):
    user = stack.user()
    project = user.project()
    cases = [
        ({"name": "A"}, {"baseImageUrl"}),
        ({"baseImageUrl": "https://x.test/a.png"}, {"name"}),
        ({"name": "A", "baseImageUrl": "ftp://x.test/a.png"}, {"baseImageUrl"}),
        ({"name": "A", "baseImageUrl": "javascript:alert(1)"}, {"baseImageUrl"}),
        ({"name": "A", "baseImageUrl": "https://x.test/a.png", "personaAge": 500}, {"personaAge"}),
        (
            {"name": "A", "baseImageUrl": "https://x.test/a.png", "personaAge": "old"},
            {"personaAge"},
        ),
        ({"name": "A", "baseImageUrl": "https://x.test/a.png", "sourceType": "x"}, {"sourceType"}),
    ]
    for body, fields in cases:
        response = user.post(f"/projects/{project['id']}/avatars", json=body)
        assert response.status_code == 422, (body, response.text)
        assert {f["field"] for f in response.json()["error"]["fields"]} == fields, body
    assert user.get(f"/projects/{project['id']}").json()["project"]["avatars"] == []


def test_oversized_bodies_are_refused(stack):
    user = stack.user()
    project = user.project()
    big = "data:image/png;base64," + "A" * (2_000_001 - 22)
    too_long = user.post(
        f"/projects/{project['id']}/avatars", json={"name": "A", "baseImageUrl": big}
    )
    assert too_long.status_code == 422  # a field over its 2 MB limit
    huge = user.post(
        f"/projects/{project['id']}/avatars",
        json={"name": "A", "baseImageUrl": big + "A" * 3_000_000},
    )
    assert huge.status_code == 413  # refused before the body is even read
    assert huge.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert user.get("/projects").status_code == 200  # and the app is fine
