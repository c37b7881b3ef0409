"""The huggingface provider, against a loopback stub of the inference API."""

from __future__ import annotations

import base64

from tests.app.conftest import HF_KEY
from tests.app.test_generate import decode_png


def test_generation_calls_the_inference_api_with_the_key(hf_stack, hf_stub):
    user = hf_stack.user()
    project = user.project()
    response = user.post(
        f"/projects/{project['id']}/avatars/generate",
        json={"prompt": "studio portrait of a chef", "seed": 42},
    )
    assert response.status_code == 200 and response.json()["creditUsed"] == 8
    generation = user.wait_generation(response.json()["generation"]["id"])
    assert generation["status"] == "completed", generation
    sent = [r for r in hf_stub.requests if r["body"]["inputs"] == "studio portrait of a chef"]
    assert len(sent) == 1
    assert sent[0]["path"] == "/models/black-forest-labs/FLUX.1-dev"
    assert sent[0]["authorization"] == f"Bearer {HF_KEY}"
    assert sent[0]["body"]["parameters"] == {
        "width": 512,
        "height": 512,
        "seed": 42,
        "num_inference_steps": 28,
        "guidance_scale": 3.5,
    }
    url = generation["avatar"]["baseImageUrl"]
    assert url.startswith("data:image/png;base64,")
    assert decode_png(base64.b64decode(url.split(",", 1)[1])) == (64, 64)


def test_a_failed_generation_refunds_its_credits(hf_stack):
    user = hf_stack.user(credits=100)
    project = user.project()
    response = user.post(
        f"/projects/{project['id']}/avatars/generate", json={"prompt": "this one will fail"}
    )
    assert response.json()["creditBalance"] == 92
    generation = user.wait_generation(response.json()["generation"]["id"])
    assert generation["status"] == "failed"
    assert "Hugging Face answered 503" in generation["errorMessage"]
    assert HF_KEY not in generation["errorMessage"]  # the stub echoed it back
    assert generation["avatarId"] is None and generation["completedAt"]
    assert hf_stack.balance(user.id) == 100
    assert user.get(f"/projects/{project['id']}").json()["project"]["avatars"] == []
