"""The cost of the safety layers on the apply benchmark's workload, in the engine itself.

    .venv/bin/python -m bench.guard                  # N = 300, 9 rounds
    .venv/bin/python -m bench.guard --size 100 --reps 5

Self-contained, like bench/fleet.py: it creates its databases (ss_bench_guard_*) on
SHIPSHAPE_BENCH_DSN (default: the PostgreSQL at 127.0.0.1:5432) and drops them at the
end. Never asserts timing; prints a Markdown table.

What is measured: `migrations.migrate` (the engine, in-process: no interpreter start-up,
no progress display, so that the difference is not drowned) applying bench.trees'
fk_migrations(N) into a fresh database, with the safety layers on (what runs today) and
off (the parser's gate, the runtime guard (no migration watched: neither its snapshot nor
its check) and the half-built-index checks replaced by no-ops: the engine as it was
before them), in interleaved rounds (on, off, off, on, ...). The parser's time alone (check_declared over all N) is reported too.

What decides is CPU time, not wall time: on a machine shared with other work, wall time
varied by more than the difference (+24 % and -6 % in two runs of the same code), while
the CPU a run consumes depends far less on what else runs. Each run counts the client's
CPU (time.process_time) and the server backend's (its time on a CPU, in nanoseconds,
from /proc/<pid>/schedstat, so the server must run on this machine; without /proc only
the client is counted), and
the verdict is the median over rounds of each round's on/off ratio of their sum, and
the ratio of the fastest runs (interference from other work only ever adds CPU: a
cache shared with other processes, a core shared by hyper-threads). That interference
still moved single rounds by +-15 %; `--together` runs each round's two applies at the
same time, in two processes (each with its own backend) that start together, so that
both meet the same load, and the per-round ratio compares like with like.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from bench.common import ADMIN_DSN
from bench.trees import fk_migrations, write_shipshape_tree
from shipshape import db
from shipshape.engine import guard, indexes, migrations
from shipshape.settings import load_environment
from shipshape.targets import Target

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def layers_off():
    """The engine without the parser's gate, the runtime guard and the index checks."""
    saved = (migrations.check_declared, guard.Guard.start, indexes.created)
    migrations.check_declared = lambda *a, **k: None
    guard.Guard.start = lambda self, *, declared: False  # nothing watched: no query at all
    indexes.created = lambda sql_text: []
    try:
        yield
    finally:
        (migrations.check_declared, guard.Guard.start, indexes.created) = saved


def database(admin: str):
    name = f"ss_bench_guard_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, psycopg.conninfo.make_conninfo(admin, dbname=name)


def drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@dataclasses.dataclass(frozen=True)
class Run:
    wall: float    # seconds
    client: float  # CPU seconds of this process
    server: float  # CPU seconds of the connection's backend (0 when /proc cannot tell)

    @property
    def cpu(self) -> float:
        return self.client + self.server


def backend_cpu(pid: int) -> float:
    """CPU seconds the backend process has used: the first field of /proc/<pid>/schedstat
    (nanoseconds; /proc/<pid>/stat counts in ticks of 10 ms)."""
    try:
        with open(f"/proc/{pid}/schedstat") as stat:
            return int(stat.read().split()[0]) / 1e9
    except OSError:
        return 0.0  # the server runs elsewhere: only the client is counted


def apply_once(admin: str, env, loaded, ready=lambda: None) -> Run:
    """migrate() into a fresh database, measured from when ready() returns (connected)."""
    name, dsn = database(admin)
    try:
        with db.connect(Target(env, dsn, "bench")) as conn:
            pid = conn.info.backend_pid
            ready()
            server, client, started = backend_cpu(pid), time.process_time(), time.perf_counter()
            migrations.migrate(conn, env, loaded)
            wall = time.perf_counter() - started
            return Run(wall, time.process_time() - client, backend_cpu(pid) - server)
    finally:
        drop(admin, name)


def _apply_in_child(mode: str, env, loaded, start, results) -> None:
    """One apply in a forked process, after every process of the round is ready."""
    with layers_off() if mode == "off" else contextlib.nullcontext():
        results.put((mode, apply_once(ADMIN_DSN, env, loaded, ready=start.wait)))


def together(env, loaded) -> dict[str, Run]:
    """A round's two applies, on and off, at the same time (fork: the tree stays loaded)."""
    fork = multiprocessing.get_context("fork")
    start, results = fork.Barrier(2), fork.Queue()
    children = [fork.Process(target=_apply_in_child, args=(mode, env, loaded, start, results))
                for mode in ("on", "off")]
    for child in children:
        child.start()
    got = dict(results.get(timeout=600) for _ in children)
    for child in children:
        child.join()
        if child.exitcode:
            raise RuntimeError(f"an apply failed (exit {child.exitcode})")
    return got


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--together", action="store_true",
                        help="each round's on and off applies at the same time")
    args = parser.parse_args(argv)
    env = load_environment("local", config_dir=ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_shipshape_tree(Path(tmp) / "sql", fk_migrations(args.size))
        loaded = migrations.load(tree, env)
        from shipshape.engine import sqlparse  # noqa: F401  imported untimed (pglast: 0.1 s)

        for migration in loaded:  # rendered untimed: the parser's time is the parser's
            _ = migration.up
        started = time.perf_counter()
        migrations.check_declared(loaded, env)
        parse = time.perf_counter() - started
        times = {"on": [], "off": []}
        apply_once(ADMIN_DSN, env, loaded)  # warm-up, untimed
        for rep in range(args.reps):
            if args.together:
                for mode, run in together(env, loaded).items():
                    times[mode].append(run)
                continue
            for mode in (("on", "off") if rep % 2 == 0 else ("off", "on")):
                with layers_off() if mode == "off" else contextlib.nullcontext():
                    times[mode].append(apply_once(ADMIN_DSN, env, loaded))
    how = "rounds of both at once" if args.together else "interleaved rounds"
    print(f"N = {args.size}, {args.reps} {how}, load average "
          f"{os.getloadavg()[0]:.1f} at the end. Medians; the verdict is the first row.\n")
    print("| measure | layers off (as before) | layers on | on / off, median of rounds "
          "| fastest on / fastest off | each round (%) |\n|---|---|---|---|---|---|")
    for label, value in (("CPU, client + server", lambda r: r.cpu),
                         ("CPU, client", lambda r: r.client),
                         ("CPU, server backend", lambda r: r.server),
                         ("wall time", lambda r: r.wall)):
        on = [value(r) for r in times["on"]]
        off = [value(r) for r in times["off"]]
        if not all(off):
            continue  # the server's CPU, when /proc cannot tell
        pairs = [a / b for a, b in zip(on, off, strict=True)]
        print(f"| {label} | {statistics.median(off):.3f} s | {statistics.median(on):.3f} s | "
              f"**{_pct(statistics.median(pairs))}** | {_pct(min(on) / min(off))} | "
              f"{', '.join(f'{(p - 1) * 100:+.0f}' for p in pairs)} |")
    print(f"\nThe parser alone (check_declared over all {args.size}): {parse * 1000:.0f} ms.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
