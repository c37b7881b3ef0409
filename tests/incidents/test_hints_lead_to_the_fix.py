"""Every printed hint leads to the fix (issue 11): for each incident class, break a
deployed database, run what an operator runs first, then run mechanically the command
the final message names, then the next one, until doctor is healthy. At most three
hops, and never back to a command already run (the circle deploy -> deploy that a
dropped column used to cause).

The follower repeats the operator's own flags, as doctor asks ("add the same --dsn to
each command"): --dsn (never printed: it may hold a password) and --sql-dir when the
command lacks them; a runbook gets --yes and a --reason, as an operator confirming it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from tests.conftest import ROOT, run_invoke

MAX_HOPS = 3
_COMMAND = re.compile(r"`(invoke [^`]+)`")


def next_command(stderr: str) -> str | None:
    """The command the final message names: the last `invoke ...` in backticks."""
    found = _COMMAND.findall(stderr)
    return found[-1] if found else None


def follow(first: list[str], *, dsn: str, sql_dir, state: dict) -> list[tuple[str, int]]:
    """Run first, then each named command, until doctor exits 0. Returns (command, exit
    code) for each command run, the first included."""
    ran: list[tuple[str, int]] = []
    command = shlex.join(["invoke", *first])
    while True:
        args = _flags(command, dsn, sql_dir)
        done = run_invoke(*args, env=state)
        ran.append((command, done.returncode))
        if args[0] == "doctor" and done.returncode == 0:
            return ran
        named = next_command(done.stderr)
        if named is None:
            # a success that names nothing: the operator checks with doctor
            assert done.returncode == 0, (ran, done.stderr)
            named = "invoke doctor --env dev"
        assert done.returncode in (0, 2, 3, 6), (ran, done.stderr)
        assert len(ran) <= MAX_HOPS, f"more than {MAX_HOPS} hops: {ran}"
        previous = [c for c, _ in ran]
        # doctor once more at the end, to see it healthy, is the check, not a circle: the
        # loop ends there or fails below
        final_check = named.startswith("invoke doctor") and done.returncode == 0
        assert named not in previous or final_check, (
            f"back to {named!r} after {ran}\n{done.stderr}")
        if named in previous:
            again = run_invoke(*_flags(named, dsn, sql_dir), env=state)
            ran.append((named, again.returncode))
            assert again.returncode == 0, f"a circle: {ran}\n{again.stdout}\n{again.stderr}"
            return ran
        command = named


def _flags(command: str, dsn: str, sql_dir) -> list[str]:
    """command's arguments, with the operator's --dsn and --sql-dir when it lacks them, and
    a runbook's confirmation."""
    args = shlex.split(command)[1:]
    if "--dsn" not in args:
        args += ["--dsn", dsn]
    if "--sql-dir" not in args:
        args += ["--sql-dir", str(sql_dir)]
    if args[0] == "runbook.run":
        args += ["--yes", "--reason", "following the hint"]
    return args


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.test",
                    *args], check=True, capture_output=True)


@pytest.fixture
def sql_dir(tmp_path):
    """The shipped SQL tree (the same checksums), committed in a git repository of its own
    so that an edit to it can be restored."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "sql", root / "sql")
    if shutil.which("git"):
        _git(root, "init", "-q")
        _git(root, "add", "sql")
        _git(root, "commit", "-q", "-m", "as deployed")
    return root / "sql"


def _drop_column(incident, sql_dir):
    incident.sql('ALTER TABLE avatars DROP COLUMN "hairColor"')


def _drop_history(incident, sql_dir):
    incident.sql("DROP TABLE shipshape.history")


def _edit_migration(incident, sql_dir):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    path = sql_dir / "migrations" / "0003_avatar_projects" / "migrate.sql.j2"
    path.write_text("-- reformatted, nothing else\n" + path.read_text())


def _pending_migration(incident, sql_dir):
    run = run_invoke("db.rollback", "--to", "10", "--env", "dev", "--dsn", incident.dsn,
                     "--sql-dir", str(sql_dir), "--yes")
    assert run.returncode == 0, run.stderr


def _parent_table_dropped(incident, sql_dir):
    # the FKs of avatars and avatar_generations go with it; their rows stay, orphaned
    incident.sql("DROP TABLE avatar_projects CASCADE")


def _missing_seeds(incident, sql_dir):
    incident.sql("DELETE FROM ai_models")


CASES = {
    "dropped-column": (_drop_column, ["deploy"], "schema-drift"),
    "dropped-column-seen-by-verify": (_drop_column, ["db.verify"], "schema-drift"),
    "history-table-gone": (_drop_history, ["deploy"], "hand-made-schema"),
    "edited-migration": (_edit_migration, ["deploy"], "edited-migration"),
    "pending-migration": (_pending_migration, ["doctor"], "migrations-not-applied"),
    "missing-seeds": (_missing_seeds, ["doctor"], "models-missing"),
    "parent-table-dropped": (_parent_table_dropped, ["doctor"], "data-integrity"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_hint_leads_to_a_healthy_doctor(case, incident, sql_dir, tmp_path):
    breakage, first, runbook = CASES[case]
    breakage(incident, sql_dir)
    before = incident.rows()
    state = {"SHIPSHAPE_STATE_DIR": str(tmp_path / "state"),
             "SHIPSHAPE_REPORTS_DIR": str(tmp_path / "reports")}
    ran = follow([*first, "--env", "dev"], dsn=incident.dsn, sql_dir=sql_dir, state=state)
    commands = [c for c, _ in ran]
    # the runbook of this incident class is on the way, and the way ends healthy
    assert any(c.startswith(f"invoke runbook.run {runbook} ") for c in commands), ran
    assert ran[-1][0].startswith("invoke doctor") and ran[-1][1] == 0, ran
    assert len(ran) - 1 <= MAX_HOPS, ran
    # and no row was lost on the way (repairs put data first)
    after = incident.rows()
    for table, ids in before.items():
        assert ids <= after.get(table, set()), f"rows of {table} lost: {ids - after[table]}"
