"""GET /me: the authenticated user's account and current credit balance."""

from __future__ import annotations

import httpx
import pytest

from tests.app.conftest import API


def test_me_is_the_tokens_user_with_the_balance(stack):
    user = stack.user(credits=321)
    stack.user(credits=5)  # another user: not the one answered
    response = user.get("/me")
    assert response.status_code == 200, response.text
    email = stack.sql("SELECT email FROM users WHERE id = %s", [user.id])[0][0]
    assert response.json() == {
        "success": True,
        "user": {
            "id": user.id,
            "email": email,
            "name": "Test User",
            "accountType": "payg",
            "subscriptionTier": "free",
            "creditBalance": 321,
            "unlimitedUntil": None,
        },
    }


def test_the_balance_goes_down_after_a_generation(stack):
    user = stack.user(credits=100)
    project = user.project()
    assert user.get("/me").json()["user"]["creditBalance"] == 100
    started = user.post(
        f"/projects/{project['id']}/avatars/generate", json={"prompt": "a portrait"}
    )
    assert started.status_code == 200, started.text
    cost = started.json()["creditUsed"]
    assert cost > 0
    assert user.get("/me").json()["user"]["creditBalance"] == 100 - cost
    assert started.json()["creditBalance"] == 100 - cost


def test_an_unlimited_account_shows_until_when(stack):
    user = stack.user(credits=0)
    stack.sql(
        "UPDATE users SET \"accountType\" = 'subscription', \"subscriptionTier\" = 'pro', "
        "\"unlimitedUntil\" = '2031-01-02T03:04:05.5+00' WHERE id = %s",
        [user.id],
        fetch=False,
    )
    account = user.get("/me").json()["user"]
    assert account["accountType"] == "subscription" and account["subscriptionTier"] == "pro"
    assert account["unlimitedUntil"] == "2031-01-02T03:04:05.5+00:00"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer acr_" + "u" * 43}, {"Authorization": "Basic abc"}],
    ids=["missing", "unknown", "not-bearer"],
)
def test_me_without_a_valid_token_is_401(stack, headers):
    response = httpx.get(stack.url + API + "/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "user" not in response.json()
