"""Apply one mutant at a time to a copy of the tree and run its tests there.

The copy is made once per run (the working tree without .git, .venv, caches and state);
a mutant rewrites one file of the copy, its tests run with the copy first on PYTHONPATH
(subprocesses too: `invoke`, the app), then the file is written back as it was. Every
process a mutant's tests start is in a session of its own, ended whole on timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mutate.mutants import Mutant

ROOT = Path(__file__).resolve().parent.parent
IGNORED = (".git", ".venv", ".shipshape", "__pycache__", "*.egg-info", ".pytest_cache",
           ".ruff_cache", "reports", "build", "node_modules", "*.pyc")

KILLED, SURVIVED, TIMEOUT, STALE, ERROR = "killed", "survived", "timeout", "stale", "error"


@dataclass
class Outcome:
    mutant: Mutant
    status: str
    seconds: float = 0.0
    detail: str = ""  # the first failing test, or why it could not run

    @property
    def counts_as_killed(self) -> bool:
        return self.status in (KILLED, TIMEOUT)


def stale(mutant: Mutant, root: Path = ROOT) -> str:
    """Why the mutant no longer applies to the tree at root, or ""."""
    path = root / mutant.file
    if not path.is_file():
        return f"{mutant.file} does not exist"
    found = path.read_text().count(mutant.original)
    if found != 1:
        return (f"its snippet occurs {found} times in {mutant.file} (the code changed: "
                f"update the mutant)")
    return ""


class Workspace:
    """A copy of the tree, and the environment its tests run in."""

    def __init__(self, base: Path):
        self.base = base
        self.tree = base / "tree"
        shutil.copytree(ROOT, self.tree, ignore=shutil.ignore_patterns(*IGNORED),
                        symlinks=True)
        self.env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        self.env.update(
            PYTHONPATH=str(self.tree),
            PYTHONDONTWRITEBYTECODE="1",
            SHIPSHAPE_STATE_DIR=str(base / "state"),
            SHIPSHAPE_REPORTS_DIR=str(base / "reports"),
        )

    def check_imports(self) -> None:
        """The copy, not the working tree (an editable install), must be what runs."""
        out = subprocess.run(
            [sys.executable, "-c",
             "import shipshape, app; print(shipshape.__file__); print(app.__file__)"],
            cwd=self.tree, env=self.env, capture_output=True, text=True, check=True).stdout
        for line in out.split():
            if not Path(line).resolve().is_relative_to(self.tree.resolve()):
                raise SystemExit(f"mutate: {line} is imported from outside the copy "
                                 f"{self.tree}; the mutants would not be tested")

    def stale(self, mutant: Mutant) -> str:
        return stale(mutant, self.tree)

    def pytest(self, tests: tuple[str, ...], *, timeout: float, test_timeout: int,
               log: Path) -> tuple[int | None, float]:
        """Run pytest -x on `tests` in the copy; (exit code or None on timeout, seconds)."""
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                   "--timeout", str(test_timeout), *tests]
        started = time.monotonic()
        with log.open("w") as out:
            process = subprocess.Popen(command, cwd=self.tree, env=self.env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                _end_session(process)
        return code, time.monotonic() - started

    def run(self, mutant: Mutant, *, timeout: float, test_timeout: int, logs: Path) -> Outcome:
        why = self.stale(mutant)
        if why:
            return Outcome(mutant, STALE, detail=why)
        path = self.tree / mutant.file
        pristine = path.read_text()
        mutated = pristine.replace(mutant.original, mutant.replacement, 1)
        if path.suffix == ".py":
            try:  # a mutant that does not compile would be "killed" by any import
                compile(mutated, str(path), "exec")
            except SyntaxError as exc:
                return Outcome(mutant, ERROR, detail=f"the mutated file does not compile: {exc}")
        path.write_text(mutated)
        log = logs / f"{mutant.id}.log"
        try:
            code, seconds = self.pytest(mutant.tests, timeout=timeout,
                                        test_timeout=test_timeout, log=log)
        finally:
            path.write_text(pristine)
        if code is None:
            return Outcome(mutant, TIMEOUT, seconds, f"no result within {timeout:.0f}s")
        if code == 0:
            return Outcome(mutant, SURVIVED, seconds)
        if code in (1, 2):  # tests failed, or a test module failed to import
            return Outcome(mutant, KILLED, seconds, first_failure(log))
        return Outcome(mutant, ERROR, seconds, f"pytest exit {code}; see {log}")


def first_failure(log: Path) -> str:
    """The first failing test's id, redacted: parametrised ids carry the DSNs the
    redaction tests feed in, and this ends up in RESULTS.md, a tracked file."""
    from shipshape.secrets import redact

    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return redact(line.split(" - ")[0].split(" ", 1)[1])
    return ""


def _end_session(process: subprocess.Popen) -> None:
    """End the session this run started (pytest, and the servers its tests started)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
