"""Zero-downtime figures (issue #12), as a user runs the deploy: `invoke db.migrate` and
`invoke deploy` as child processes.

1. stall: a table of --rows rows (default 2 million, generate_series) with a writer
   running (one-row UPDATEs, autocommit, back to back); the longest time one write
   waited while (a) the naive migration ran — `ADD COLUMN ... NOT NULL DEFAULT
   gen_random_uuid()` and a plain `CREATE INDEX`, which the lock check refuses in prod —
   and (b) the rewrite it suggests: a nullable column, SET DEFAULT, a batched backfill
   (`-- shipshape:backfill`), `CHECK (... IS NOT NULL) NOT VALID`, VALIDATE, SET NOT NULL,
   `CREATE INDEX CONCURRENTLY`. Target: (b) never stalls a write longer than lock_timeout.
2. http: GET /health/ready (it reads the database) from --clients clients, all on one
   URL: a reverse proxy (bench/proxy.py, round robin) in front of two app processes,
   during an expand deploy and a rolling restart driven through the proxy's admin port
   as a deploy drives nginx or HAProxy: a new process, ready, added to the proxy; the old
   one removed (the proxy answers once its requests under way finished), then SIGTERM.
   Failed requests counted (target: 0): transport errors and non-200 answers alike.

    .venv/bin/python -m bench.zero_downtime [--rows 2000000] [--clients 8] [stall] [http]

Prints a Markdown report; never asserts timing. Every database it creates is dropped.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("SHIPSHAPE_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
LOCK_TIMEOUT = "3s"  # prod's

TABLE = """
CREATE TABLE big (id bigint PRIMARY KEY, n integer NOT NULL, note text);
"""
NAIVE = """
ALTER TABLE big ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();
CREATE INDEX big_n_idx ON big (n);
"""
REWRITE = [  # one migration each, in order
    ("0002_token", ("ALTER TABLE big ADD COLUMN token uuid;\n"
                    "ALTER TABLE big ALTER COLUMN token SET DEFAULT gen_random_uuid();\n")),
    ("0003_fill_token", ("-- shipshape:backfill\nUPDATE big SET token = gen_random_uuid() "
                         "WHERE id IN (SELECT id FROM big WHERE token IS NULL ORDER BY id "
                         "LIMIT {{ env.backfill_batch_size }});\n")),
    ("0004_token_not_null", ("ALTER TABLE big ADD CONSTRAINT big_token_nn "
                             "CHECK (token IS NOT NULL) NOT VALID;\n")),
    ("0005_validate", "ALTER TABLE big VALIDATE CONSTRAINT big_token_nn;\n"),
    ("0006_set_not_null", "ALTER TABLE big ALTER COLUMN token SET NOT NULL;\n"),
    ("0007_index", ("-- shipshape:no-transaction\n"
                    "CREATE INDEX CONCURRENTLY big_n_idx ON big (n);\n")),
]


def invoke(*args: str, state: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["SHIPSHAPE_STATE_DIR"] = state
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def tree(root: Path, migrations: list[tuple[str, str]]) -> Path:
    for name, up in migrations:
        directory = root / "migrations" / name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "migrate.sql.j2").write_text(up)
        (directory / "rollback.sql.j2").write_text("SELECT 1;\n")
    (root / "seeds").mkdir(exist_ok=True)
    (root / "checks").mkdir(exist_ok=True)
    return root


class Database:
    def __init__(self):
        self.name = f"ss_bench_zdt_{uuid.uuid4().hex[:8]}"
        self.dsn = psycopg.conninfo.make_conninfo(ADMIN_DSN, dbname=self.name)

    def __enter__(self):
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        return self

    def __exit__(self, *exc):
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(self.name)))


class Writer(threading.Thread):
    """One-row UPDATEs back to back; the longest single write is the stall."""

    def __init__(self, dsn: str, rows: int):
        super().__init__(daemon=True)
        self.dsn, self.rows, self.stop = dsn, rows, threading.Event()
        self.longest, self.writes, self.errors = 0.0, 0, 0

    def run(self):
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            i = 0
            while not self.stop.is_set():
                i = (i * 7919 + 1) % self.rows + 1
                started = time.monotonic()
                try:
                    conn.execute("UPDATE big SET note = 'w' WHERE id = %s", [i])
                    self.writes += 1
                except psycopg.Error:
                    self.errors += 1
                self.longest = max(self.longest, time.monotonic() - started)


def stall(rows: int, state: str) -> list[str]:
    lines = ["| variant | wall time | longest write stall | writes | failed writes |",
             "|---|---|---|---|---|"]
    for variant in ("naive", "rewrite"):
        with Database() as database, tempfile.TemporaryDirectory() as tmp:
            migrations = [("0001_big", TABLE)]
            base = tree(Path(tmp) / "sql", migrations)
            assert invoke("db.migrate", "--env", "dev", "--dsn", database.dsn, "--sql-dir",
                          str(base), state=state).returncode == 0
            with psycopg.connect(database.dsn, autocommit=True) as conn:
                conn.execute("INSERT INTO big SELECT g, g %% 1000, 'row' FROM "
                             "generate_series(1, %s) g", [rows])
                conn.execute("VACUUM ANALYZE big")
            tree(base, [("0002_naive", NAIVE)] if variant == "naive" else REWRITE)
            writer = Writer(database.dsn, rows)
            writer.start()
            time.sleep(0.5)  # the writer is under way before the migration starts
            started = time.monotonic()
            result = invoke("db.migrate", "--env", "dev", "--dsn", database.dsn, "--sql-dir",
                            str(base), "--set", f"lock_timeout={LOCK_TIMEOUT}", "--set",
                            "backfill_batch_size=20000", state=state)
            wall = time.monotonic() - started
            writer.stop.set()
            writer.join()
            if result.returncode != 0:
                raise RuntimeError(f"{variant}: {result.stderr}")
            lines.append(f"| {variant} | {wall:.1f} s | {writer.longest * 1000:,.0f} ms | "
                         f"{writer.writes} | {writer.errors} |")
    lines.append(f"\nTarget: the rewrite never stalls a write longer than lock_timeout "
                 f"({LOCK_TIMEOUT}); {rows:,} rows.")
    return lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(dsn: str, release: int | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "APP_ENV": "local", "APP_HOST": "127.0.0.1",
           "APP_PORT": str(port), "APP_LOG_LEVEL": "WARNING", "APP_WORKER_ENABLED": "false",
           "APP_HEARTBEAT_INTERVAL": "0.5"}
    if release:
        env["APP_SCHEMA_VERSION"] = str(release)
    process = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while True:
        if process.poll() is not None:
            raise RuntimeError("app exited")
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


class ReverseProxy:
    """bench/proxy.py as a process: the clients' one URL, and its admin port."""

    def __init__(self, backends: list[str]):
        port, self.admin_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.proxy", "--port", str(port), "--admin-port",
             str(self.admin_port), *backends], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError("the proxy did not start")

    def set_backends(self, urls: list[str]) -> None:
        """Returns once the proxy sends no new request to a removed backend and the ones
        under way on it have finished."""
        httpx.put(f"http://127.0.0.1:{self.admin_port}/backends", content="\n".join(urls),
                  timeout=60).raise_for_status()

    def stats(self) -> dict:
        return httpx.get(f"http://127.0.0.1:{self.admin_port}/stats", timeout=10).json()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def http(clients: int, state: str) -> list[str]:
    with Database() as database, tempfile.TemporaryDirectory() as tmp:
        sql_dir = Path(tmp) / "sql"
        subprocess.run(["cp", "-r", str(ROOT / "sql"), str(sql_dir)], check=True)
        assert invoke("deploy", "--env", "local", "--dsn", database.dsn, "--sql-dir",
                      str(sql_dir), state=state).returncode == 0
        backends = [start_app(database.dsn), start_app(database.dsn)]
        proxy = ReverseProxy([url for _, url in backends])
        stop, counts, lock = threading.Event(), {"ok": 0, "failed": 0}, threading.Lock()
        failures: Counter = Counter()

        def client():
            with httpx.Client(timeout=10) as session:
                while not stop.is_set():
                    try:
                        code = session.get(proxy.url + "/health/ready").status_code
                        ok, why = code == 200, f"HTTP {code}"
                    except httpx.HTTPError as error:
                        ok, why = False, type(error).__name__
                    with lock:
                        counts["ok" if ok else "failed"] += 1
                        if not ok:
                            failures[why] += 1

        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        # the expand deploy: a new table and a nullable column, while both serve
        (sql_dir / "migrations" / "0013_avatar_tags").mkdir()
        (sql_dir / "migrations" / "0013_avatar_tags" / "migrate.sql.j2").write_text(
            'CREATE TABLE avatar_tags (id bigint PRIMARY KEY, tag text NOT NULL);\n'
            'ALTER TABLE avatars ADD COLUMN "archivedAt" timestamptz;\n')
        (sql_dir / "migrations" / "0013_avatar_tags" / "rollback.sql.j2").write_text(
            '-- shipshape:destructive\nDROP TABLE avatar_tags;\n'
            'ALTER TABLE avatars DROP COLUMN "archivedAt";\n')
        deployed = invoke("deploy", "--env", "local", "--dsn", database.dsn, "--sql-dir",
                          str(sql_dir), "--phase", "expand", state=state)
        # the rolling restart, through the proxy: each old process replaced by one of the
        # new release, one at a time; the new one ready before the old one leaves
        for i, (process, url) in enumerate(list(backends)):
            new_process, new_url = start_app(database.dsn, release=13)
            current = [u for _, u in backends]
            proxy.set_backends(current + [new_url])
            backends[i] = (new_process, new_url)
            proxy.set_backends([u for _, u in backends])  # drained when it returns
            process.send_signal(signal.SIGTERM)
            process.wait()
        elapsed = time.monotonic() - started
        stop.set()
        for thread in threads:
            thread.join()
        proxied = proxy.stats()
        proxy.stop()
        for process, _ in backends:
            process.terminate()
            process.wait()
    why = ", ".join(f"{n} {reason}" for reason, n in failures.most_common()) or "none"
    return ["| phase | requests | failed | seconds |", "|---|---|---|---|",
            (f"| expand deploy ({'ok' if deployed.returncode == 0 else 'FAILED'}) + rolling "
             f"restart of 2 processes behind one proxy | {counts['ok'] + counts['failed']} | "
             f"{counts['failed']} | {elapsed:.1f} |"), "",
            (f"Target: 0 failed; {clients} clients, GET /health/ready on the proxy's one URL. "
             f"Failures: {why}. The proxy: {proxied.get('requests', 0)} requests, "
             f"{proxied.get('redispatched', 0)} sent again after a refused connection, "
             f"{proxied.get('bad_gateway', 0)} answered 502.")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("what", nargs="*", default=["stall", "http"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-state-") as state:
        if "stall" in args.what:
            print("## Write stall during a migration\n")
            print("\n".join(stall(args.rows, state)) + "\n")
        if "http" in args.what:
            print("## HTTP during an expand deploy and a rolling restart\n")
            print("\n".join(http(args.clients, state)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
