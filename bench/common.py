"""What every benchmark shares: the server, scratch databases, timing, result rows."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
# The PostgreSQL the benchmarks run against (an admin DSN: it creates databases).
ADMIN_DSN = os.environ.get("SHIPSHAPE_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_PREFIX = "ss_bench_"


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    measured: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    within: str = "—"  # yes | no | — (informational)
    notes: str = ""


@dataclass
class Context:
    """Shared by the benchmarks of one run: the server, its databases, a work dir."""

    admin_dsn: str
    workdir: Path
    databases: Databases
    cache: dict = field(default_factory=dict)

    def env(self):
        from shipshape.settings import load_environment

        return load_environment("dev", config_dir=ROOT)

    def target(self, dsn: str):
        from shipshape.targets import Target

        return Target(self.env(), dsn, "bench")


class Databases:
    """Scratch databases named ss_bench_<hex>; every one is dropped, also on errors."""

    def __init__(self, admin_dsn: str):
        self.admin_dsn = admin_dsn
        self.created: list[str] = []

    def create(self) -> str:
        """A fresh database; returns its DSN."""
        import psycopg
        from psycopg import sql

        name = f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
        self.created.append(name)  # before CREATE: a half-done CREATE is dropped too
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def dsn(self, name: str) -> str:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.admin_dsn, dbname=name)

    def drop(self, dsn: str) -> None:
        from psycopg.conninfo import conninfo_to_dict

        self._drop(conninfo_to_dict(dsn)["dbname"])

    def _drop(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> list[str]:
        """Drop every database this run created; returns those that could not be dropped."""
        failed = []
        for name in list(self.created):
            try:
                self._drop(name)
            except Exception as exc:  # keep dropping the others
                print(f"bench: could not drop database {name}: {exc}", file=sys.stderr)
                failed.append(name)
        return failed



def venv_bin(name: str) -> Path:
    """An executable of the interpreter running the benchmark (the project's venv)."""
    return Path(sys.executable).parent / name


def timed(work, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = work(*args, **kwargs)
    return time.perf_counter() - started, result


def median(values: list[float]) -> float:
    return statistics.median(values)


def seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def run_checked(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command; a failure raises with its stderr (a benchmark of a failing command
    is meaningless)."""
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} ... exited {result.returncode}: "
                           f"{(result.stderr or result.stdout).strip()[-2000:]}")
    return result


def machine_info(admin_dsn: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(admin_dsn, connect_timeout=5) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
    try:
        psql = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        psql = "psql not found"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": f"{usable} usable ({os.cpu_count()} online), {cpu}",
        "PostgreSQL": f"{server} (server), {psql}",
        "Python": f"{platform.python_version()} on {platform.system()} {platform.release()}",
    }
