"""Fleet deploys: 200 databases sequential vs --parallel 8, and the cost per database.

    .venv/bin/python -m bench.fleet                      # 200 databases, --parallel 8
    .venv/bin/python -m bench.fleet --databases 50 --parallel 4 --json

Self-contained, like bench/app_load.py: it creates its databases (ss_bench_fleet_*) on
SHIPSHAPE_BENCH_DSN (default: the PostgreSQL at 127.0.0.1:5432), times the CLI as a
process as an operator runs it, and drops every database at the end, also on errors,
Ctrl-C or SIGTERM. Never asserts timing; prints a Markdown table (or --json).

What is measured, on one tiny tree (tests/treeutil.small_tree: two migrations, a seed
file, a data check), with the shadow snapshot cached beforehand so that every deploy,
fleet or single, verifies against the same warm cache:

1. `invoke fleet.deploy --parallel 1` over N fresh databases, then (after resetting them)
   `--parallel P`: the wall times and their ratio (the speed-up).
2. The sequential run's time per database against one `invoke deploy` process (median of
   a few, each on a fresh database): what a fleet saves over a loop of deploys.
3. The same per-database time against one in-process `pipeline.deploy` (median): the
   fleet's own overhead (threads, journal, progress) per database.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("SHIPSHAPE_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
SINGLE_RUNS = 3


class Scratch:
    """N databases named ss_bench_fleet_<hex>_<i>; every one dropped at the end."""

    def __init__(self, admin_dsn: str, count: int):
        self.admin_dsn = admin_dsn
        prefix = f"ss_bench_fleet_{uuid.uuid4().hex[:8]}"
        self.names = [f"{prefix}_{i:03d}" for i in range(count)]
        self.created: list[str] = []

    def dsn(self, name: str) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.admin_dsn, dbname=name)

    def create(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            for name in self.names:
                self.created.append(name)  # before CREATE: a half-done one is dropped too
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def reset(self, names=None) -> None:
        """Each database as new again (no shipshape schema, no table of the tree)."""
        import psycopg

        def one(name):
            with psycopg.connect(self.dsn(name), autocommit=True) as conn:
                conn.execute("DROP SCHEMA IF EXISTS shipshape CASCADE")
                conn.execute("DROP TABLE IF EXISTS items CASCADE")

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(one, names or self.names))

    def deployed(self) -> list[int]:
        """How many successful deploys each database records."""
        import psycopg

        def one(name):
            with psycopg.connect(self.dsn(name)) as conn:
                return conn.execute("SELECT count(*) FROM shipshape.deployments "
                                    "WHERE result = 'ok'").fetchone()[0]

        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(one, self.names))

    def drop_all(self) -> None:
        import psycopg
        from psycopg import sql

        def one(name):
            try:
                with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(name)))
            except psycopg.Error as exc:
                print(f"bench.fleet: could not drop {name}: {exc}", file=sys.stderr)

        # DROP DATABASE waits for a checkpoint; concurrent drops share them
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, self.created))
        self.created.clear()


def invoke(*args: str, env: dict) -> float:
    """Run `invoke ARGS` as a process; its wall time. A failure raises with its output."""
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environ.update(env)
    started = time.perf_counter()
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "invoke"), "--search-root", str(ROOT),
                           *args], cwd=ROOT, env=environ, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"invoke {' '.join(args[:3])} ... exited {done.returncode}: "
                           f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return elapsed


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def measure(scratch: Scratch, workdir: Path, parallel: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from shipshape.ops import pipeline
    from shipshape.settings import load_environment
    from shipshape.targets import Target
    from tests.treeutil import small_tree

    tree = small_tree(workdir / "sql")
    fleet_file = workdir / "fleet.yaml"
    fleet_file.write_text("fleet: bench\nenv: dev\nsql_dir: sql\ncanary: {count: 1}\n"
                          "databases:\n" + "".join(
                              f"  - {{name: t{i:03d}, dsn: '{scratch.dsn(n)}'}}\n"
                              for i, n in enumerate(scratch.names)))
    env = {"SHIPSHAPE_STATE_DIR": str(workdir / "state"),
           "SHIPSHAPE_REPORTS_DIR": str(workdir / "reports")}
    os.environ.update(env)  # the in-process deploys share the warm shadow cache
    first, spares = scratch.names[0], scratch.names[1:1 + SINGLE_RUNS]

    # warm-up, untimed: the shadow snapshot cached, the interpreter's files in the page cache
    invoke("deploy", "--env", "dev", "--dsn", scratch.dsn(first), "--sql-dir", str(tree),
           env=env)
    single = []
    for name in spares:
        scratch.reset([name])
        single.append(invoke("deploy", "--env", "dev", "--dsn", scratch.dsn(name),
                             "--sql-dir", str(tree), env=env))
    target_env = load_environment("dev", config_dir=ROOT)
    in_process = []
    for name in spares:
        scratch.reset([name])
        started = time.perf_counter()
        pipeline.deploy(Target(target_env, scratch.dsn(name), "bench"), tree)
        in_process.append(time.perf_counter() - started)

    runs = {}
    for label, count in (("sequential", 1), ("parallel", parallel)):
        scratch.reset()
        runs[label] = invoke("fleet.deploy", "--fleet", str(fleet_file), "--parallel",
                             str(count), env=env)
        counts = scratch.deployed()
        if set(counts) != {1}:
            raise RuntimeError(f"after the {label} run, deploys per database: "
                               f"{sorted(set(counts))} (expected exactly 1 each)")
    n = len(scratch.names)
    return {"databases": n, "parallel": parallel, "sequential_s": runs["sequential"],
            "parallel_s": runs["parallel"], "speedup": runs["sequential"] / runs["parallel"],
            "per_database_s": runs["sequential"] / n,
            "single_deploy_s": statistics.median(single), "single_deploy_runs": single,
            "in_process_deploy_s": statistics.median(in_process),
            "in_process_runs": in_process}


def table(r: dict) -> str:
    n, p = r["databases"], r["parallel"]
    rows = [
        (f"fleet.deploy, {n} databases: --parallel {p} vs --parallel 1",
         f"--parallel {p}: {seconds(r['parallel_s'])}",
         f"--parallel 1: {seconds(r['sequential_s'])}", f"{r['speedup']:.2f}x faster",
         "one process each, as typed; canary wave of 1 first"),
        ("per database in a sequential fleet run vs one `invoke deploy` process",
         seconds(r["per_database_s"]), seconds(r["single_deploy_s"]),
         f"{r['per_database_s'] / r['single_deploy_s']:.2f}x",
         f"median of {len(r['single_deploy_runs'])} single deploys, each on a fresh "
         f"database, process start included"),
        ("per database in a sequential fleet run vs an in-process `pipeline.deploy`",
         seconds(r["per_database_s"]), seconds(r["in_process_deploy_s"]),
         f"{r['per_database_s'] / r['in_process_deploy_s']:.2f}x",
         "the fleet's own cost per database (threads, journal, progress) over the deploy"),
    ]
    lines = ["| benchmark | measured | baseline | ratio | notes |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--databases", type=int, default=200)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.databases < SINGLE_RUNS + 1:
        parser.error(f"--databases must be at least {SINGLE_RUNS + 1}")
    signal.signal(signal.SIGTERM, _sigterm)
    scratch = Scratch(ADMIN_DSN, args.databases)
    try:
        with tempfile.TemporaryDirectory(prefix="shipshape-bench-fleet-") as workdir:
            print(f"bench.fleet: creating {args.databases} databases ...", file=sys.stderr)
            scratch.create()
            print("bench.fleet: measuring ...", file=sys.stderr)
            result = measure(scratch, Path(workdir), args.parallel)
    finally:
        print("bench.fleet: dropping the databases ...", file=sys.stderr)
        scratch.drop_all()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
