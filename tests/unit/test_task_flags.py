"""Every task's flags: one meaning per short flag, the README's table current, and a
missing required flag is bad input (exit 5) with the usage."""

from __future__ import annotations

from shipshape.tasks import reference
from shipshape.tasks._task import SHORT_FLAGS
from shipshape.tasks.collection import namespace
from tests.conftest import ROOT, run_invoke


def test_readme_flag_table_is_current():
    readme = (ROOT / "README.md").read_text()
    assert reference.embed(readme, reference.flags_table()) == readme, (
        "README's task flag table is stale: run `python -m shipshape.tasks.reference --write`")


def test_a_short_flag_means_the_same_in_every_task():
    meanings: dict[str, set[str]] = {}
    for name in namespace.task_names:
        for arg in namespace[name].get_arguments(ignore_unknown_help=True):
            for short in (n for n in arg.names[1:] if len(n) == 1):
                meanings.setdefault(short, set()).add(arg.names[0])
    assert meanings, "no task has a short flag: the check would prove nothing"
    assert all(len(longs) == 1 for longs in meanings.values()), meanings
    assert {short: longs.pop() for short, longs in meanings.items()} == {
        short: long.rstrip("_").replace("_", "-") for long, short in SHORT_FLAGS.items()}


def test_missing_required_flag_is_exit_5_with_usage():
    result = run_invoke("db.rollback")
    assert result.returncode == 5, result.stderr
    assert "Missing --to" in result.stderr and "invoke db.rollback --to" in result.stderr


def test_up_refuses_another_env_and_names_the_stack_command():
    result = run_invoke("up", "-e", "dev")
    assert result.returncode == 5, result.stderr
    assert "invoke infra.up --env dev" in result.stderr


def test_missing_positional_argument_is_exit_5_with_usage():
    """invoke's own parser would exit 1 ("did not receive required positional arguments")."""
    for task, arg in (("runbook.run", "name"), ("runbook.show", "name"), ("db.import", "path")):
        result = run_invoke(task)
        assert result.returncode == 5, (task, result.stderr)
        assert f"invoke {task} <{arg}> [options]" in result.stderr, result.stderr
        assert f"invoke --help {task}" in result.stderr, result.stderr
        assert result.stdout == "", result.stdout


def test_unknown_flag_is_exit_5_naming_the_task_help():
    result = run_invoke("db.baseline", "--no-such-flag")
    assert result.returncode == 5, result.stderr
    assert "No idea what '--no-such-flag' is" in result.stderr
    assert "invoke --help db.baseline" in result.stderr


def test_unknown_task_is_exit_5_naming_the_list():
    result = run_invoke("db.no-such-task")
    assert result.returncode == 5, result.stderr
    assert "invoke --list" in result.stderr
