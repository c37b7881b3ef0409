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
RESULTS = BENCH_DIR / "results.md"
# The PostgreSQL the benchmarks run against (an admin DSN: it creates databases).
ADMIN_DSN = os.environ.get("SHIPSHAPE_BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DB_PREFIX = "ss_bench_"


@dataclass
class Row:
    """One line of a section's table. Times are medians of the run's repetitions."""

    what: str
    median: str = "—"
    low: str = "—"  # fastest run
    high: str = "—"  # slowest run
    ratio: str = "—"  # against the section's baseline, measured in the same run
    target: str = "—"
    met: str = "—"  # yes | no | — (informational)


@dataclass
class Section:
    """One benchmark's results: a table, and the notes that say how to read it."""

    title: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    failed: bool = False  # something could not run (its row says why)
    measured: str = "median"  # the header of the measured column
    markdown: str = ""  # a table of its own shape, instead of the rows'


@dataclass
class Context:
    """Shared by the benchmarks of one run: the server, its databases, a work dir."""

    admin_dsn: str
    workdir: Path
    databases: Databases
    options: Options = field(default_factory=lambda: Options())
    child_env: dict = field(default_factory=dict)  # bench.common.child_env(...) of the run
    cache: dict = field(default_factory=dict)


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
        """A URL (every peer takes one), the admin URL's with the path replaced."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.admin_dsn)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("SHIPSHAPE_BENCH_DSN must be a postgresql:// URL")
        return urlunsplit(parts._replace(path="/" + name))

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


@dataclass(frozen=True)
class Options:
    """What `python -m bench` was asked for."""

    sizes: tuple[int, ...] = (100, 300, 1000)
    reps: int = 5
    warmup: bool = True  # one untimed round of every contender before the timed ones
    tty: bool = True  # children write to a pseudo-terminal, as on a user's screen
    quick: bool = False


def venv_bin(name: str) -> Path:
    """An executable of the interpreter running the benchmark (the project's venv)."""
    return Path(sys.executable).parent / name


def child_env(state_dir: Path, tty: bool) -> dict[str, str]:
    """The children's environment: shipshape's state (shadow cache, embedded server) in
    the run's own directory, never the checkout's .shipshape/; a terminal type when the
    children write to a pseudo-terminal, so rich draws what a user's terminal shows."""
    env = dict(os.environ)
    env["SHIPSHAPE_STATE_DIR"] = str(state_dir)
    env.pop("DATABASE_URL", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # .pyc files written and reused, as for a user
    if tty:
        env.setdefault("TERM", "xterm-256color")
        if env["TERM"] in ("dumb", "unknown", ""):
            env["TERM"] = "xterm-256color"
        env.pop("NO_COLOR", None)
        env.setdefault("COLUMNS", "120")
    return env


class ProcessFailed(RuntimeError):
    pass


def run_process(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None,
                tty: bool = True, timeout: float = 900) -> tuple[float, str]:
    """Run one command as a user would; returns (wall seconds, its output).

    The clock covers fork to exit: interpreter start-up, imports, connecting, the work and
    drawing the output. With tty, stdout and stderr are a pseudo-terminal (120x40) that a
    thread drains as a terminal would; otherwise pipes. A non-zero exit raises with the
    output's tail: a benchmark of a failing command is meaningless.
    """
    import threading

    if tty:
        import fcntl
        import pty
        import struct
        import termios

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        chunks: list[bytes] = []

        def drain():
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the slave
                    return
                if not data:
                    return
                chunks.append(data)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        started = time.perf_counter()
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=slave, stderr=slave, close_fds=True)
        finally:
            os.close(slave)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        elapsed = time.perf_counter() - started
        reader.join(timeout=10)
        os.close(master)
        output = b"".join(chunks).decode("utf-8", "replace")
    else:
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        elapsed = time.perf_counter() - started
        code, output = proc.returncode, proc.stdout.decode("utf-8", "replace")
    if code != 0:
        raise ProcessFailed(f"`{' '.join(map(str, cmd[:3]))} ...` exited {code}: "
                            f"{output.strip()[-1500:]}")
    return elapsed, output


@dataclass
class Sample:
    """The timed runs of one contender."""

    times: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def cells(self) -> tuple[str, str, str]:
        if self.error or not self.times:
            return "failed", "—", "—"
        return seconds(self.median), seconds(min(self.times)), seconds(max(self.times))

    def row(self, name: str, baseline: Sample | None) -> Row:
        """This contender's table row: its times, its failure, or its ratio to baseline
        (when the baseline ran cleanly)."""
        row = Row(name, *self.cells())
        if self.error:
            row.median = f"failed: {self.error[:200]}"
        elif baseline is not None and baseline.times and not baseline.error:
            row.ratio = ratio(self.median, baseline.median)
        return row


def interleaved(contenders: list[str], reps: int, warmup: bool, run_one) -> dict[str, Sample]:
    """run_one(name) -> seconds, for every contender, `reps` rounds, in the given order and
    reversed by turns (ABC, CBA, ABC, ...) so that machine noise is shared: each contender
    sits as often early as late, and neighbours stay neighbours (the first two, shipshape
    and its baseline, run back to back in every round, each first in turn: ABAB).
    A contender that fails once is dropped from later rounds, its error kept."""
    samples = {name: Sample() for name in contenders}
    rounds = ([("warm-up", 0)] if warmup else []) + [("timed", r) for r in range(reps)]
    for kind, r in rounds:
        order = contenders if r % 2 == 0 else contenders[::-1]
        for name in order:
            sample = samples[name]
            if sample.error:
                continue
            try:
                elapsed = run_one(name)
            except Exception as exc:  # report it in the row, keep measuring the others
                sample.error = f"{type(exc).__name__}: {exc}"
                print(f"bench:   {name} failed: {sample.error[:800]}", file=sys.stderr)
                continue
            if kind == "timed":
                sample.times.append(elapsed)
            print(f"bench:   {kind} {name}: {seconds(elapsed)}", file=sys.stderr, flush=True)
    return samples


def paired(sample: Sample, baseline: Sample) -> str:
    """sample ÷ baseline round by round (the two ran back to back in each round), as
    "median (min–max)": steadier than the ratio of medians when the machine's load drifts."""
    if sample.error or baseline.error or not sample.times \
            or len(sample.times) != len(baseline.times):
        return ""
    per = [a / b for a, b in zip(sample.times, baseline.times)]
    return f"{statistics.median(per):.2f}x ({min(per):.2f}x–{max(per):.2f}x)"


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x"


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


def code_version() -> str:
    """The commit measured (and whether the tree had changes): runs compare only when known."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                "shipshape", "tasks.py", "sql"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return (head or "unknown") + (" (with uncommitted changes to shipshape/)" if dirty else "")


def load_average() -> str:
    """Other work on the machine, which no interleaving fully cancels: said in the report."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


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
        "code measured": code_version(),
        "load average (1, 5, 15 min) at the start": load_average(),
        "cores": f"{usable} usable ({os.cpu_count()} online), {cpu}",
        "PostgreSQL": f"{server} (server), {psql}",
        "Python": f"{platform.python_version()} on {platform.system()} {platform.release()}",
    }
