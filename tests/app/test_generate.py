"""Models, generation (incident 1's response), credits under concurrency, the worker, images."""

from __future__ import annotations

import asyncio
import struct
import zlib

import httpx

from tests.app.conftest import API


def decode_png(data: bytes) -> tuple[int, int]:
    """Check a PNG for real: signature, every chunk's CRC, and the pixel data's size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + chunk) == crc, kind
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert (depth, color) == (8, 2)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    assert kind == b"IEND"
    assert len(zlib.decompress(idat)) == height * (1 + 3 * width)
    return width, height


def test_models_are_listed_in_the_order_generation_picks_them(stack):
    user = stack.user()
    response = user.get("/models")
    assert response.status_code == 200
    models = response.json()["models"]
    assert response.json()["count"] == 4
    # Lowest tier first (free < basic < pro, ranked, not alphabetical), then cheapest.
    assert [(m["modelKey"], m["tier"], m["creditCost"]) for m in models] == [
        ("avatar-creator:flux-dev-base", "free", 8),
        ("avatar-creator:flux-schnell-fast", "basic", 6),
        ("avatar-creator:flux-dev-realism", "basic", 12),
        ("avatar-creator:flux-dev-hd-realism", "pro", 15),
    ]


def test_generate_answers_like_incident_1_and_the_worker_makes_the_avatar(stack):
    user = stack.user(credits=1000)
    project = user.project()
    response = user.post(
        f"/projects/{project['id']}/avatars/generate",
        json={
            "prompt": "professional headshot, business attire, studio lighting",
            "name": "Test Avatar",
            "gender": "female",
            "style": "business",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message"] == "Avatar generation started"
    assert body["generation"]["status"] == "pending" and body["generation"]["id"]
    assert body["creditUsed"] == 8 and body["creditBalance"] == 992
    assert stack.balance(user.id) == 992

    generation = user.wait_generation(body["generation"]["id"])
    assert generation["status"] == "completed", generation
    assert generation["modelKey"] == "avatar-creator:flux-dev-base"
    assert generation["completedAt"] and generation["errorMessage"] is None
    avatar = generation["avatar"]
    assert avatar["id"] == generation["avatarId"]
    assert avatar["name"] == "Test Avatar" and avatar["sourceType"] == "generated"
    assert avatar["gender"] == "female" and avatar["style"] == "business"
    assert avatar["generationPrompt"].startswith("professional headshot")
    assert isinstance(avatar["seedUsed"], int)
    assert (
        user.get(f"/projects/{project['id']}").json()["project"]["avatars"][0]["id"] == avatar["id"]
    )
    assert stack.sql(
        'SELECT action FROM avatar_usage_history WHERE "avatarId" = %s', [avatar["id"]]
    ) == [("generated",)]

    image = stack.client.get(avatar["baseImageUrl"])  # public: a function of the seed
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert decode_png(image.content) == (512, 512)
    assert stack.client.get(avatar["baseImageUrl"]).content == image.content
    assert decode_png(stack.client.get(avatar["thumbnailUrl"]).content) == (128, 128)


def test_images_are_deterministic_per_seed(stack):
    user = stack.user()
    project = user.project()
    urls = []
    for seed in (1234, 1234, 99):
        generation = user.post(
            f"/projects/{project['id']}/avatars/generate",
            json={"prompt": "a portrait", "seed": seed},
        ).json()["generation"]
        urls.append(user.wait_generation(generation["id"])["avatar"]["baseImageUrl"])
    assert urls[0] == urls[1] != urls[2]
    same = [stack.client.get(u).content for u in urls]
    assert same[0] == same[1] != same[2]
    for bad in ("1-512x512.gif", "x-512x512.png", "1-513x512.png", "99999999999-64x64.png"):
        assert stack.client.get(f"{API}/images/placeholder/{bad}").status_code == 404


def test_insufficient_credits_is_402_and_charges_nothing(stack):
    user = stack.user(credits=5)
    project = user.project()
    response = user.post(
        f"/projects/{project['id']}/avatars/generate", json={"prompt": "a portrait"}
    )
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "INSUFFICIENT_CREDITS"
    assert error["required"] == 8 and error["creditBalance"] == 5
    assert stack.balance(user.id) == 5
    assert stack.sql('SELECT count(*) FROM avatar_generations WHERE "userId" = %s', [user.id]) == [
        (0,)
    ]


def test_unlimited_accounts_are_not_charged(stack):
    user = stack.user(credits=0)
    stack.sql(
        'UPDATE users SET "accountType" = \'subscription\', "unlimitedUntil" = now() + '
        "interval '1 day' WHERE id = %s",
        [user.id],
        fetch=False,
    )
    project = user.project()
    response = user.post(
        f"/projects/{project['id']}/avatars/generate", json={"prompt": "a portrait"}
    )
    assert response.status_code == 200
    assert response.json()["creditUsed"] == 0 and response.json()["creditBalance"] == 0


def test_generate_validation(stack):
    user = stack.user()
    project = user.project()
    for body, field in [
        ({}, "prompt"),
        ({"prompt": "ab"}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"prompt": "a portrait", "seed": -1}, "seed"),
        ({"prompt": "a portrait", "model": "pro"}, "model"),
    ]:
        response = user.post(f"/projects/{project['id']}/avatars/generate", json=body)
        assert response.status_code == 422, body
        assert [f["field"] for f in response.json()["error"]["fields"]] == [field]
    assert stack.balance(user.id) == 1000


def test_50_concurrent_generations_with_credits_for_20(stack):
    user = stack.user(credits=160)  # 20 x 8
    project = user.project()

    async def burst():
        async with httpx.AsyncClient(
            base_url=stack.url,
            headers=user.headers,
            timeout=30,
            limits=httpx.Limits(max_connections=50),
        ) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"{API}/projects/{project['id']}/avatars/generate",
                        json={"prompt": f"portrait number {i}"},
                    )
                    for i in range(50)
                )
            )

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 20 + [402] * 30
    ok = [r.json() for r in responses if r.status_code == 200]
    # Each success saw its own balance: 152, 144, ..., 0. Never negative, nothing twice.
    assert sorted(b["creditBalance"] for b in ok) == list(range(0, 160, 8))
    assert all(b["creditUsed"] == 8 for b in ok)
    assert all(
        r.json()["error"]["code"] == "INSUFFICIENT_CREDITS"
        for r in responses
        if r.status_code == 402
    )
    assert stack.balance(user.id) == 0
    rows = stack.sql(
        "SELECT count(*), sum((options->>'creditUsed')::int) FROM avatar_generations "
        'WHERE "userId" = %s',
        [user.id],
    )
    assert rows == [(20, 160)]  # every credit spent is accounted for by one generation
    for body in ok:
        assert user.wait_generation(body["generation"]["id"])["status"] == "completed"
    assert stack.sql('SELECT count(*) FROM avatars WHERE "userId" = %s', [user.id]) == [(20,)]
