"""The cost of the safety layers on the apply benchmark's workload, in the engine itself.

    .venv/bin/python -m bench.guard                  # N = 300, 3 rounds
    .venv/bin/python -m bench.guard --size 100 --reps 5

Self-contained, like bench/fleet.py: it creates its databases (ss_bench_guard_*) on
SHIPSHAPE_BENCH_DSN (default: the PostgreSQL at 127.0.0.1:5432) and drops them at the
end. Never asserts timing; prints a Markdown table.

What is measured: `migrations.migrate` (the engine, in-process: no interpreter start-up,
no progress display, so that the difference is not drowned) applying bench.trees'
fk_migrations(N) into a fresh database, with the safety layers on (what runs today) and
off (the parser's gate, the runtime guard's two queries and the half-built-index checks
replaced by no-ops: the engine as it was before them), in interleaved rounds (on, off,
off, on, ...). The parser's time alone (check_declared over all N) is reported too.
"""

from __future__ import annotations

import argparse
import contextlib
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
    saved = (migrations.check_declared, guard.snapshot, guard.losses, indexes.created)
    migrations.check_declared = lambda *a, **k: None
    guard.snapshot = lambda conn: {}
    guard.losses = lambda conn, before: ([], before)
    indexes.created = lambda sql_text: []
    try:
        yield
    finally:
        (migrations.check_declared, guard.snapshot, guard.losses, indexes.created) = saved


def database(admin: str):
    name = f"ss_bench_guard_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name, psycopg.conninfo.make_conninfo(admin, dbname=name)


def drop(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def apply_once(admin: str, env, loaded) -> float:
    name, dsn = database(admin)
    try:
        with db.connect(Target(env, dsn, "bench")) as conn:
            started = time.perf_counter()
            migrations.migrate(conn, env, loaded)
            return time.perf_counter() - started
    finally:
        drop(admin, name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    env = load_environment("local", config_dir=ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        tree = write_shipshape_tree(Path(tmp) / "sql", fk_migrations(args.size))
        loaded = migrations.load(tree, env)
        started = time.perf_counter()
        migrations.check_declared(loaded, env)
        parse = time.perf_counter() - started
        times = {"on": [], "off": []}
        apply_once(ADMIN_DSN, env, loaded)  # warm-up, untimed
        for rep in range(args.reps):
            for mode in (("on", "off") if rep % 2 == 0 else ("off", "on")):
                with layers_off() if mode == "off" else contextlib.nullcontext():
                    times[mode].append(apply_once(ADMIN_DSN, env, loaded))
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    print(f"| N = {args.size}, {args.reps} rounds | median | runs |\n|---|---|---|")
    print(f"| engine, safety layers off (as before) | {off:.2f} s | "
          f"{', '.join(f'{t:.2f}' for t in times['off'])} |")
    print(f"| engine, safety layers on | {on:.2f} s ({(on / off - 1) * 100:+.1f} %) | "
          f"{', '.join(f'{t:.2f}' for t in times['on'])} |")
    pairs = [a / b for a, b in zip(times["on"], times["off"], strict=True)]
    print(f"| per round, on / off (median of {len(pairs)}) | "
          f"{(statistics.median(pairs) - 1) * 100:+.1f} % | "
          f"{', '.join(f'{(p - 1) * 100:+.0f} %' for p in pairs)} |")
    print(f"| the parser alone (check_declared, all {args.size}) | {parse * 1000:.0f} ms | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
