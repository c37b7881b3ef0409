"""Loopback load on the Avatar Creator API: requests/s and p50/p99 latency of
GET /projects and POST /projects/{id}/avatars/generate.

By default it is self-contained: it creates a scratch database on the admin DSN, deploys
it with shipshape, creates a user with enough credits and a bearer token, starts the app
(`python -m app`) on a free loopback port, runs the load with an async client, then stops
the app and drops the database. Every run is bounded by a request count AND a duration.

    .venv/bin/python bench/app_load.py               # defaults: 32 clients, 32 users, <= 10 s
    .venv/bin/python bench/app_load.py --concurrency 16 --requests 1000 --duration 5 --json
    .venv/bin/python bench/app_load.py --url http://127.0.0.1:8000 \
        --token-file .shipshape/demo-token --project <project id>

Against --url, POST generate spends the token owner's credits (8 per request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API = "/api/apps/avatar-creator"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: the load client.

    httpx's async pool costs more CPU per request than the app itself on 2 shared cores
    (measured: ~6 ms vs ~1-3 ms at 32 clients), so it would measure the client. The app's
    responses always carry Content-Length (uvicorn, fixed bodies), which is all this reads.
    """

    def __init__(self, host: str, port: int, token: str):
        self.host, self.port, self.token = host, port, token
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: dict | None) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {self.token}\r\nAccept: application/json\r\n"
        )
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + payload)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await self.reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def run_load(
    url: str,
    identities: list[tuple[str, str]],
    method: str,
    path_of,
    body_of,
    *,
    concurrency: int,
    requests: int,
    duration: float,
) -> dict:
    """`concurrency` clients, client i acting as identities[i % len]: (token, project id).
    path_of(n, project_id) and body_of(n) give request n. Stops at `requests` or `duration`."""
    from urllib.parse import urlsplit

    target = urlsplit(url)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    issued = 0
    deadline = time.perf_counter() + duration

    async def one_client(index: int):
        nonlocal issued
        token, project_id = identities[index % len(identities)]
        connection = Connection(target.hostname, target.port or 80, token)
        try:
            while issued < requests and time.perf_counter() < deadline:
                n = issued
                issued += 1
                started = time.perf_counter()
                status = await connection.request(method, path_of(n, project_id), body_of(n))
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_client(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    ms = [x * 1000 for x in latencies]
    return {
        "requests": len(ms),
        "seconds": round(elapsed, 2),
        "rps": round(len(ms) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(percentile(ms, 50), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "mean_ms": round(statistics.fmean(ms), 1) if ms else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


class Scratch:
    """A deployed scratch database; users, each with a token, credits and projects with
    avatars; and the app on a free loopback port."""

    def __init__(
        self,
        admin_dsn: str,
        users: int,
        projects: int,
        avatars: int,
        credits: int,
        worker: bool = True,
    ):
        self.admin_dsn, self.users, self.projects, self.worker = admin_dsn, users, projects, worker
        self.avatars, self.credits = avatars, credits
        self.dbname = f"bench_app_{uuid.uuid4().hex[:8]}"
        self.process = None
        self.keep_log = False
        self.state = tempfile.TemporaryDirectory(prefix="bench-state-")  # shadow cache
        self.log = Path(tempfile.gettempdir()) / f"{self.dbname}.log"

    def __enter__(self):
        try:
            return self._setup()
        except BaseException:
            self.__exit__()  # drop what was created; the app's log stays for the traceback
            raise

    def _setup(self):
        import psycopg
        from psycopg import sql

        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("SHIPSHAPE_STATE_DIR", self.state.name)
        from app import tokens
        from shipshape.ops import pipeline
        from shipshape.settings import load_environment
        from shipshape.targets import Target

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))
        self.dsn = psycopg.conninfo.make_conninfo(self.admin_dsn, dbname=self.dbname)
        pipeline.deploy(
            Target(load_environment("local", config_dir=ROOT), self.dsn, "bench"), ROOT / "sql"
        )
        self.identities = []  # (token, first project id) per user
        with psycopg.connect(self.dsn) as conn:
            for u in range(self.users):
                user_id = conn.execute(
                    'INSERT INTO users (email, "creditBalance") VALUES (%s, %s) RETURNING id',
                    [f"bench{u}@example.test", self.credits],
                ).fetchone()[0]
                token = tokens.issue(conn, user_id, "bench")
                projects = conn.execute(
                    'INSERT INTO avatar_projects ("userId", name, description, "createdAt") '
                    "SELECT %s, 'Project ' || i, 'bench', now() - i * interval '1 second' "
                    "FROM generate_series(1, %s) i RETURNING id",
                    [user_id, self.projects],
                ).fetchall()
                conn.execute(
                    'INSERT INTO avatars ("userId", "projectId", name, "baseImageUrl") '
                    "SELECT %s, p, 'Avatar ' || j, 'https://img.example.test/' || j || '.png' "
                    "FROM unnest(%s::text[]) p, generate_series(1, %s) j",
                    [user_id, [r[0] for r in projects], self.avatars],
                )
                self.identities.append((token, projects[0][0]))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "DATABASE_URL": self.dsn,
            "APP_ENV": "local",
            "APP_HOST": "127.0.0.1",
            "APP_PORT": str(port),
            "APP_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "APP_WORKER_ENABLED": "true" if self.worker else "false",
        }
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.keep_log = True
        raise RuntimeError(f"app not ready; see {self.log}")

    def __exit__(self, *exc):
        import psycopg
        from psycopg import sql

        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(self.dbname)
                )
            )
        self.state.cleanup()
        if not self.keep_log:
            self.log.unlink(missing_ok=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--admin-dsn",
        default=os.environ.get(
            "SHIPSHAPE_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--url", help="an already running app (then --token-file is needed)")
    parser.add_argument("--token-file", type=Path)
    parser.add_argument("--project", help="with --url: the project to generate into")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000, help="per scenario, at most")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="per scenario, seconds at most"
    )
    parser.add_argument(
        "--users",
        type=int,
        default=32,
        help="scratch: users (clients act as "
        "user i %% users; 'POST generate, 1 user' uses the first only)",
    )
    parser.add_argument("--projects", type=int, default=10, help="scratch: projects per user")
    parser.add_argument("--avatars", type=int, default=3, help="scratch: avatars per project")
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="scratch: run the app without its generation worker (measures the request path alone)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def scenarios(identities: list[tuple[str, str]], url: str):
        warm = {"concurrency": min(4, args.concurrency), "requests": 100, "duration": 5}
        projects = lambda n, project: f"{API}/projects"
        generate = lambda n, project: f"{API}/projects/{project}/avatars/generate"
        prompt = lambda n: {"prompt": f"bench portrait {n}"}
        asyncio.run(run_load(url, identities, "GET", projects, lambda n: None, **warm))
        bound = {
            "concurrency": args.concurrency,
            "requests": args.requests,
            "duration": args.duration,
        }
        out = {
            "GET projects": asyncio.run(
                run_load(url, identities, "GET", projects, lambda n: None, **bound)
            )
        }
        if len(identities) > 1:
            out[f"POST generate, {min(len(identities), args.concurrency)} users"] = asyncio.run(
                run_load(url, identities, "POST", generate, prompt, **bound)
            )
        out["POST generate, 1 user"] = asyncio.run(
            run_load(url, identities[:1], "POST", generate, prompt, **bound)
        )
        return out

    if args.url:
        if not args.token_file or not args.project:
            parser.error("--url needs --token-file and --project")
        results = scenarios([(args.token_file.read_text().strip(), args.project)], args.url)
        setup = {"url": args.url}
    else:
        credits = 8 * 2 * (args.requests + 100)
        with Scratch(
            args.admin_dsn,
            args.users,
            args.projects,
            args.avatars,
            credits,
            worker=not args.no_worker,
        ) as scratch:
            results = scenarios(scratch.identities, scratch.url)
        setup = {
            "users": args.users,
            "projects_per_user": args.projects,
            "avatars_per_project": args.avatars,
            "worker": not args.no_worker,
        }
    report = {"concurrency": args.concurrency, "cpus": os.cpu_count(), **setup, "results": results}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"loopback load: {args.concurrency} concurrent keep-alive clients (asyncio), "
            f"{os.cpu_count()} CPUs shared by client, app and PostgreSQL"
            + ("" if args.url else f"; generation worker {'off' if args.no_worker else 'on'}")
        )
        print(
            f"{'scenario':<26} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses"
        )
        for name, r in results.items():
            print(
                f"{name:<26} {r['requests']:>8} {r['rps']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8}  "
                f"{r['statuses']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
