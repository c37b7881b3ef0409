"""A small HTTP/1.1 reverse proxy for the zero-downtime bench (bench/zero_downtime.py):
the one URL the clients hit, in front of app processes that a rolling restart replaces.
No proxy is installable here (no nginx or HAProxy package on this machine), so this does
what those are configured to do for a rolling deploy, and nothing else:

- Round robin over the current backends. Each request goes to its backend on a new
  connection with `Connection: close`, so a backend leaves with no idle keep-alive
  connection to cut; the client side keeps its connection alive.
- A backend that refuses the connection never saw the request: the request is sent to
  the next backend (HAProxy's `retries` + `option redispatch`). A backend that fails
  after the request was sent is a 502, counted: the bench reports it as a failure.
- Reconfiguration as nginx's reload or HAProxy's runtime API does it, on a separate admin
  port: `PUT /backends` (one URL a line) swaps the list for new requests and answers only
  once every request still under way on a removed backend has finished (drained), so
  the caller can SIGTERM it next. `GET /stats` says what was proxied, retried and failed.

    python -m bench.proxy --port 8080 --admin-port 8081 [http://127.0.0.1:9001 ...]

Prints `ready` on stdout once both ports listen. Bench code: not part of shipshape.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
from collections import Counter
from urllib.parse import urlsplit

HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
              b"upgrade"}


class Proxy:
    def __init__(self, backends: list[str]):
        self.backends: list[tuple[str, int]] = [_address(b) for b in backends]
        self.turn = itertools.count()
        self.active: Counter = Counter()   # requests under way, per backend
        self.stats = Counter()
        self.changed = asyncio.Condition()

    def pick(self, skip: set) -> tuple[str, int] | None:
        candidates = [b for b in self.backends if b not in skip]
        if not candidates:
            return None
        return candidates[next(self.turn) % len(candidates)]

    async def set_backends(self, urls: list[str]) -> None:
        """New requests go to `urls`; returns once the removed backends are drained."""
        new = [_address(u) for u in urls]
        removed = [b for b in self.backends if b not in new]
        self.backends = new
        async with self.changed:
            await self.changed.wait_for(lambda: all(self.active[b] == 0 for b in removed))

    # --- the client side -------------------------------------------------------------

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_line, headers = _parse_head(head)
                length = int(_header(headers, b"content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                keep_alive = (_header(headers, b"connection") or b"").lower() != b"close"
                response = await self.forward(request_line, headers, body)
                writer.write(response)
                await writer.drain()
                if not keep_alive:
                    return
        except ConnectionError:
            return
        finally:
            writer.close()

    async def forward(self, request_line: bytes, headers: list, body: bytes) -> bytes:
        self.stats["requests"] += 1
        tried: set = set()
        while (backend := self.pick(tried)) is not None:
            tried.add(backend)
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*backend)
            except OSError:
                self.stats["redispatched"] += 1  # it never saw the request: try the next
                continue
            self.active[backend] += 1
            try:
                return await self._exchange(upstream_reader, upstream_writer, request_line,
                                            headers, body)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                break  # it may have seen the request: no retry, a 502
            finally:
                upstream_writer.close()
                self.active[backend] -= 1
                async with self.changed:
                    self.changed.notify_all()
        self.stats["bad_gateway"] += 1
        return (b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")

    async def _exchange(self, reader, writer, request_line, headers, body) -> bytes:
        out = [request_line]
        out += [name + b": " + value for name, value in headers
                if name.lower() not in HOP_BY_HOP]
        out.append(b"connection: close")
        writer.write(b"\r\n".join(out) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await reader.read()  # Connection: close: the response ends at EOF
        head_end = raw.index(b"\r\n\r\n") + 4  # ValueError: no complete response
        status_line, response_headers = _parse_head(raw[:head_end])
        payload = raw[head_end:]
        framed = (_header(response_headers, b"content-length") is not None
                  or b"chunked" in (_header(response_headers, b"transfer-encoding") or b""))
        if not framed:  # close-delimited: give the client a length, keep it alive
            response_headers.append((b"content-length", str(len(payload)).encode()))
        lines = [status_line] + [n + b": " + v for n, v in response_headers
                                 if n.lower() not in HOP_BY_HOP]
        return b"\r\n".join(lines) + b"\r\n\r\n" + payload

    # --- the admin side ----------------------------------------------------------------

    async def admin(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, headers = _parse_head(head)
            length = int(_header(headers, b"content-length") or 0)
            body = await reader.readexactly(length) if length else b""
            method, path = request_line.split(b" ")[:2]
            if method == b"PUT" and path == b"/backends":
                await self.set_backends([line for line in body.decode().split() if line])
                answer = json.dumps({"backends": [f"http://{h}:{p}" for h, p in self.backends]})
            elif method == b"GET" and path == b"/stats":
                answer = json.dumps(dict(self.stats))
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                return
            data = answer.encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"connection: close\r\ncontent-length: " + str(len(data)).encode()
                         + b"\r\n\r\n" + data)
            await writer.drain()
        finally:
            writer.close()


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _parse_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _header(headers: list, name: bytes) -> bytes | None:
    return next((v for n, v in headers if n.lower() == name), None)


async def main_async(port: int, admin_port: int, backends: list[str]) -> None:
    proxy = Proxy(backends)
    front = await asyncio.start_server(proxy.serve, "127.0.0.1", port, backlog=1024)
    control = await asyncio.start_server(proxy.admin, "127.0.0.1", admin_port)
    print("ready", flush=True)
    async with front, control:
        await asyncio.gather(front.serve_forever(), control.serve_forever())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, required=True)
    parser.add_argument("backends", nargs="*")
    args = parser.parse_args(argv)
    try:
        asyncio.run(main_async(args.port, args.admin_port, args.backends))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
