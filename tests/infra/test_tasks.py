"""infra.* tasks and DSN resolution from the stack output, without the Pulumi CLI (as on
this machine) and with a stand-in CLI that the real Automation API drives."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from shipshape import outputs
from shipshape.adapters import automation
from shipshape.settings import load_environment
from shipshape.targets import resolve_target
from tests.conftest import ROOT, run_invoke
from tests.treeutil import small_tree

FAKE = Path(__file__).with_name("fake_pulumi.py")


@pytest.fixture
def no_cli(tmp_path, monkeypatch):
    """An environment with no pulumi anywhere: empty PATH, empty home."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {"PATH": str(empty), "HOME": str(tmp_path / "home"), "PULUMI_HOME": str(tmp_path / "pulumi-home")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def fake_cli(tmp_path, monkeypatch):
    """A stand-in `pulumi` on PATH; returns a function that sets the stacks it knows."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cli = bin_dir / "pulumi"
    cli.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    cli.chmod(cli.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "pulumi-state.json"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_PULUMI_STATE": str(state),
           "PULUMI_HOME": str(tmp_path / "pulumi-home"), "PULUMI_SKIP_UPDATE_CHECK": "true"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def stacks(**by_env):
        state.write_text(json.dumps({"stacks": by_env}))
        return env

    stacks.log = lambda: [json.loads(line) for line in Path(f"{state}.log").read_text().splitlines()]
    return stacks


@pytest.mark.parametrize("task", ["infra.preview", "infra.up", "infra.outputs", "infra.destroy --yes"])
def test_infra_tasks_without_the_cli_exit_5_and_say_how_to_install_it(task, no_cli):
    result = run_invoke(*task.split(), "--env", "dev", env=no_cli)
    assert result.returncode == 5, result.stderr
    message = " ".join(result.stderr.split())
    assert f"`invoke {task.split()[0]} --env dev` needs the Pulumi CLI" in message
    assert "https://www.pulumi.com/docs/install/" in message
    assert "`make up` runs the local stack" in message
    assert "Traceback" not in result.stderr


def test_infra_refuses_local_and_unknown_envs(no_cli):
    local = run_invoke("infra.up", "--env", "local", env=no_cli)
    assert local.returncode == 5 and "local env has no Pulumi stack" in local.stderr
    unknown = run_invoke("infra.preview", "--env", "qa", env=no_cli)
    assert unknown.returncode == 5 and "Unknown environment 'qa'" in unknown.stderr


def test_infra_tasks_take_a_stack_that_has_a_stack_file(no_cli):
    """prod-k8s is no profile; its stack file makes it a stack the tasks accept."""
    result = run_invoke("infra.preview", "--env", "prod-k8s", env=no_cli)
    assert result.returncode == 5
    assert "`invoke infra.preview --env prod-k8s` needs the Pulumi CLI" in " ".join(result.stderr.split())
    unknown = run_invoke("infra.up", "--env", "qa-eu", env=no_cli)
    assert unknown.returncode == 5 and "Known environments: local, dev, staging, prod, prod-k8s" in \
        " ".join(unknown.stderr.split())


def test_infra_destroy_needs_yes(no_cli):
    result = run_invoke("infra.destroy", "--env", "staging", env=no_cli)
    assert result.returncode == 3 and "--yes" in result.stderr


def test_deploy_without_a_dsn_or_cli_lists_the_three_ways(no_cli, tmp_path):
    result = run_invoke("deploy", "--env", "staging", "--sql-dir", str(small_tree(tmp_path / "sql")),
                        env=no_cli)
    assert result.returncode == 5
    message = " ".join(result.stderr.split())
    for way in ("--dsn URL", "DATABASE_URL environment variable",
                f"output `{outputs.DATABASE_URL}` of the Pulumi stack staging", "invoke infra.up --env staging"):
        assert way in message


def test_resolve_target_takes_the_stack_output_after_dsn_and_database_url(monkeypatch):
    asked = []
    monkeypatch.setattr(automation, "stack_output",
                        lambda env, name: asked.append((env, name)) or "postgresql://postgres:pw-from-stack@127.0.0.1:55433/x")
    env = load_environment("staging", config_dir=ROOT)
    target = resolve_target(env, None, environ={})
    assert (target.source, target.dsn) == ("Pulumi stack staging", "postgresql://postgres:pw-from-stack@127.0.0.1:55433/x")
    assert asked == [("staging", outputs.DATABASE_URL)]
    assert "pw-from-stack" not in target.describe()
    assert resolve_target(env, None, environ={"DATABASE_URL": "postgresql://b@h/db"}).source == "DATABASE_URL"
    assert resolve_target(env, "postgresql://a@h/db", environ={}).source == "--dsn"
    assert len(asked) == 1  # an explicit DSN never runs the CLI


def test_resolve_target_never_asks_pulumi_for_local(monkeypatch):
    monkeypatch.setattr(automation, "stack_output", lambda *a: pytest.fail("asked Pulumi for local"))
    monkeypatch.setattr("shipshape.adapters.embedded.ensure_local", lambda database: "postgresql://embedded/x")
    assert resolve_target(load_environment("local", config_dir=ROOT), None, environ={}).source == "embedded server"


def test_stack_output_without_cli_is_none(no_cli):
    assert automation.find_cli() is None
    assert automation.stack_output("dev", outputs.DATABASE_URL) is None
    assert automation.stack_output("local", outputs.DATABASE_URL) is None


def test_stack_output_reads_the_stack_through_the_automation_api(fake_cli):
    fake_cli(dev={"outputs": {outputs.DATABASE_URL: "postgresql://postgres:s3@127.0.0.1:55432/a",
                              outputs.SCHEMA_VERSION: 12}, "secret": [outputs.DATABASE_URL]})
    assert automation.stack_output("dev", outputs.DATABASE_URL) == "postgresql://postgres:s3@127.0.0.1:55432/a"
    assert automation.stack_output("staging", outputs.DATABASE_URL) is None  # no such stack
    assert automation.outputs("dev") == {
        outputs.DATABASE_URL: ("postgresql://postgres:s3@127.0.0.1:55432/a", True),
        outputs.SCHEMA_VERSION: (12, False)}
    calls = fake_cli.log()
    assert ["stack", "select", "--stack", "dev"] in calls
    assert any(call[:2] == ["stack", "output"] and "--show-secrets" in call for call in calls)


def test_deploy_env_dev_resolves_its_dsn_from_the_stack_output(fake_cli, fresh_dsn, tmp_path):
    env = fake_cli(dev={"outputs": {outputs.DATABASE_URL: fresh_dsn}, "secret": [outputs.DATABASE_URL]})
    env["SHIPSHAPE_STATE_DIR"] = str(tmp_path / "state")
    result = run_invoke("deploy", "--env", "dev", "--sql-dir", str(small_tree(tmp_path / "sql")), env=env)
    assert result.returncode == 0, result.stderr
    assert "from Pulumi stack dev" in result.stdout + result.stderr


def test_infra_outputs_never_prints_a_secret(fake_cli):
    env = fake_cli(prod={"outputs": {outputs.DATABASE_URL: "postgresql://postgres:s3cr3t-x@127.0.0.1:5/a",
                                     outputs.APP_URL: "http://127.0.0.1:8000"},
                         "secret": [outputs.DATABASE_URL]})
    shown = run_invoke("infra.outputs", "--env", "prod", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {outputs.DATABASE_URL: "[secret]", outputs.APP_URL: "http://127.0.0.1:8000"}
    table = run_invoke("infra.outputs", "--env", "prod", env=env)
    assert table.returncode == 0 and "s3cr3t-x" not in table.stdout and "http://127.0.0.1:8000" in table.stdout


def test_infra_outputs_of_a_missing_stack_says_how_to_create_it(fake_cli):
    env = fake_cli()
    result = run_invoke("infra.outputs", "--env", "staging", env=env)
    assert result.returncode == 5
    assert "stack staging does not exist" in result.stderr and "invoke infra.up --env staging" in result.stderr


def test_invoke_list_does_not_import_pulumi():
    probe = ("import sys, tasks; from invoke import Collection; tasks.namespace.task_names; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'pulumi_docker', 'pulumi_policy')))")
    import subprocess

    result = subprocess.run([sys.executable, "-c", probe], check=False, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


PROTECTED_STACK = {
    "outputs": {},
    "resources": [
        {"urn": "urn:pulumi:staging::shipshape::shipshape:infra:App$docker:index/container:Container::app-0"},
        {"urn": "urn:pulumi:staging::shipshape::shipshape:infra:Database$docker:index/volume:Volume::database-data",
         "protect": True},
        {"urn": "urn:pulumi:staging::shipshape::shipshape:infra:Database$docker:index/container:Container::database"},
    ],
}


def test_the_fake_cli_refuses_flags_the_real_cli_refuses(fake_cli):
    """What makes the tests below worth something: a flag the real CLI would reject fails here."""
    import subprocess

    env = fake_cli(staging=PROTECTED_STACK)
    for args in (["destroy", "--stack", "staging", "--yes", "--exclude-protected-resources"],
                 ["stack", "output", "--stack", "staging", "--exclude-protected"],
                 ["destroy", "--stack", "staging", "--yes", "--skip-protected"]):
        result = subprocess.run(["pulumi", *args], env={**os.environ, **env}, capture_output=True, text=True)
        assert result.returncode == 255 and "unknown flag" in result.stderr, args
    destroyed = subprocess.run(["pulumi", "destroy", "--stack", "staging", "--yes", "--skip-preview"],
                               env={**os.environ, **env}, capture_output=True, text=True)
    assert destroyed.returncode == 255 and "cannot be deleted because it is protected" in destroyed.stderr


def test_infra_destroy_on_a_protected_stack_keeps_the_data_and_deletes_the_rest(fake_cli, tmp_path):
    env = fake_cli(staging=PROTECTED_STACK)
    result = run_invoke("infra.destroy", "--env", "staging", "--yes", env=env)
    assert result.returncode == 0, result.stderr
    destroy_call = next(call for call in fake_cli.log() if call[:1] == ["destroy"])
    assert "--exclude-protected" in destroy_call and "--yes" in destroy_call
    left = json.loads(Path(env["FAKE_PULUMI_STATE"]).read_text())["stacks"]["staging"]["resources"]
    assert [r["urn"].split("::")[-1] for r in left] == ["database-data"]
    assert "still 1 protected resources" in result.stdout + result.stderr


def test_infra_destroy_dry_run_previews_without_the_protected_data(fake_cli):
    env = fake_cli(staging=PROTECTED_STACK)
    result = run_invoke("infra.destroy", "--env", "staging", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    call = next(call for call in fake_cli.log() if call[:1] == ["destroy"])
    assert "--preview-only" in call and "--exclude-protected" in call
    left = json.loads(Path(env["FAKE_PULUMI_STATE"]).read_text())["stacks"]["staging"]["resources"]
    assert len(left) == 3  # a preview deletes nothing


def test_a_destroy_without_exclude_protected_fails_on_a_protected_stack(fake_cli):
    """Why infra.destroy passes exclude_protected: the Automation API's plain destroy, as
    infra.destroy called it before, fails the whole destroy on the first protected resource."""
    from shipshape.errors import ConfigError

    fake_cli(staging=PROTECTED_STACK)
    target = automation.stack("staging")
    with pytest.raises(ConfigError, match="cannot be deleted because it is protected"):
        automation._run("staging", lambda: target.destroy(show_secrets=False))
