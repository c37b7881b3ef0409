"""The body limit (app.main.MAX_BODY) holds for chunked bodies too: the middleware counts
the bytes as they arrive and answers 413 once they pass the limit, without reading the
rest, so a huge body costs the server no memory."""

from __future__ import annotations

import httpx
import pytest

from app.main import MAX_BODY
from tests.app.conftest import API, AppProcess

CHUNK = b"x" * (64 * 1024)


class Chunks:
    """A request body of `total` bytes sent chunked (httpx sends a generator without a
    Content-Length), counting how much of it the client got to send."""

    def __init__(self, total: int, head: bytes = b""):
        self.total, self.head, self.sent = total, head, 0

    def __iter__(self):
        if self.head:
            self.sent += len(self.head)
            yield self.head
        while self.sent < self.total:
            piece = CHUNK[: self.total - self.sent]
            self.sent += len(piece)
            yield piece


def post_chunked(url: str, body: Chunks, headers: dict | None = None) -> httpx.Response:
    with httpx.Client(timeout=60) as client:
        response = client.post(url, content=body, headers=headers or {})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert response.request.headers["transfer-encoding"] == "chunked"
    return response


def vm(pid: int, key: str) -> int:
    """A /proc/<pid>/status memory figure in KiB (VmRSS now, VmHWM its peak so far)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} for {pid}")


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text[:300]
    body = response.json()
    assert body["success"] is False and body["requestId"]
    assert body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert str(MAX_BODY) in body["error"]["message"]
    assert response.headers["connection"] == "close"  # the rest of the body is never read


@pytest.mark.parametrize("authenticated", [False, True])
def test_a_chunked_body_over_the_limit_is_413(stack, authenticated):
    user = stack.user()
    headers = {**user.headers, "Content-Type": "application/json"} if authenticated else {}
    body = Chunks(64 * MAX_BODY, head=b'{"name": "')
    response = post_chunked(stack.url + API + "/projects", body, headers)
    assert_too_large(response)
    # The server stopped reading near the limit (plus what the sockets buffer): the client
    # never got to send most of the body.
    assert body.sent < 16 * MAX_BODY, body.sent
    assert user.get("/projects").json() == []
    assert user.get("/projects").status_code == 200  # and the app is fine


def test_a_chunked_body_within_the_limit_is_read(stack):
    user = stack.user()
    body = b'{"name": "Chunked", "description": "' + b"d" * 1900 + b'"}'
    response = post_chunked(
        stack.url + API + "/projects",
        Chunks(len(body), head=body),
        {**user.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["project"]["name"] == "Chunked"


def test_a_body_announced_over_the_limit_is_413_on_any_route(stack):
    response = httpx.request(
        "GET", stack.url + "/health", content=b"x" * (MAX_BODY + 1), timeout=30
    )
    assert_too_large(response)
    assert str(MAX_BODY + 1) in response.json()["error"]["message"]


@pytest.fixture
def fresh_app(stack, tmp_path):
    """An app process of its own, so its peak memory (VmHWM) is its own history only."""
    app = AppProcess(stack.app.env["DATABASE_URL"], tmp_path / "app.log").start()
    yield app
    app.stop()


def test_a_200_mib_chunked_body_leaves_memory_flat(fresh_app):
    pid = fresh_app.process.pid
    assert httpx.get(fresh_app.url + API + "/projects").status_code == 401  # warm up
    before = vm(pid, "VmHWM")
    body = Chunks(200 * 1024 * 1024, head=b'{"name": "')
    response = post_chunked(fresh_app.url + API + "/projects", body)
    # The peak, not only the current RSS: a body read whole and freed would still show.
    grown_mib = (vm(pid, "VmHWM") - before) / 1024
    assert grown_mib < 100, f"peak RSS grew by {grown_mib:.0f} MiB"
    assert vm(pid, "VmRSS") / 1024 < before / 1024 + 100
    assert_too_large(response)
    assert httpx.get(fresh_app.url + "/health").status_code == 200
