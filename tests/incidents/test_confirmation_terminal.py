"""Confirmation with a terminal that answers yes: outside `local`, only --yes confirms.

The command-line test of the runbook engine has no terminal, so its refusal ("No terminal
to confirm on") would satisfy an assertion about dev too. Here `invoke runbook.run` runs
under a pseudo-terminal (os.openpty) that answers "y" to any question: in dev it must
still refuse (exit 3) and ask nothing; in local the same answer confirms, which shows
that the terminal and the answer really reach the prompt.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time

import psycopg
import pytest

from shipshape.engine import identity
from shipshape.errors import Refused
from tests.conftest import ROOT

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PROMPT = "[y/N]"


def run_on_terminal(*args: str, env: dict, answer: str = "y", timeout: float = 120):
    """`invoke ARGS` with stdin, stdout and stderr on a pty; answers every [y/N] prompt.
    Returns (exit code, everything the terminal showed, how many prompts were answered)."""
    master, slave = os.openpty()
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    environ.update(env, TERM="dumb", COLUMNS="200", NO_COLOR="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
        cwd=ROOT, env=environ, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    shown, answered, deadline = b"", 0, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
                if shown.count(PROMPT.encode()) > answered:
                    os.write(master, f"{answer}\n".encode())
                    answered += 1
            elif process.poll() is not None:
                break
        else:
            pytest.fail(f"no exit within {timeout}s; the terminal showed:\n{shown.decode(errors='replace')}")
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return code, ANSI.sub("", shown.decode(errors="replace")).replace("\r\n", "\n"), answered


@pytest.fixture
def cli_env(tmp_path, incident_state_dir):
    return {"SHIPSHAPE_STATE_DIR": str(incident_state_dir),
            "SHIPSHAPE_REPORTS_DIR": str(tmp_path / "cli-reports")}


def test_dev_on_a_terminal_that_answers_yes_still_needs_yes(incident, cli_env):
    incident.sql("DELETE FROM ai_models WHERE tier = 'pro'")
    code, shown, answered = run_on_terminal(
        "runbook.run", "models-missing", "--env", "dev", "--dsn", incident.dsn, env=cli_env)
    assert code == 3, shown
    assert answered == 0 and PROMPT not in shown  # never asked: an answer is no --yes
    assert "dev: the plan above changes the database" in shown and "rerun with --yes" in shown
    assert "No terminal" not in shown  # the terminal was there: refused for the env
    assert incident.sql("SELECT count(*) FROM ai_models") == [(3,)]

    # the same terminal, the same answer, in local: the prompt is asked and "y" confirms
    with psycopg.connect(incident.dsn) as conn:
        identity.stamp(conn, "local", by="test")
    code, shown, answered = run_on_terminal(
        "runbook.run", "models-missing", "--env", "local", "--dsn", incident.dsn, env=cli_env)
    assert code == 0, shown
    assert answered == 1 and "Run 1 step(s) of models-missing on " in shown
    assert incident.sql("SELECT count(*) FROM ai_models") == [(4,)]


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_outside_local_an_operator_s_yes_is_not_yes(incident, make_target, env):
    target = make_target(incident.dsn, env)
    incident.target, incident.env = target, target.env
    if env != "dev":
        with psycopg.connect(incident.dsn) as conn:
            identity.stamp(conn, env, by="test")
    incident.sql("DELETE FROM ai_models WHERE tier = 'pro'")
    asked = []
    with pytest.raises(Refused, match=f"{env}: the plan above changes the database"):
        incident.run("models-missing", yes=False, confirm=lambda q: asked.append(q) or True)
    assert asked == []
    assert incident.sql("SELECT count(*) FROM ai_models") == [(3,)]
