"""The optional fleet Indexed Jobs (infra/components/kubernetes/fleet.py) under Pulumi's
mocks: one pod per shard, the completion index as --shard, the DSNs from a Secret, expand
after the gate, contract after the rollout and the expand Job, the policy pack, and every
manifest valid against the Kubernetes schema; then both Jobs' pods, rendered so and run
as Kubernetes runs them (one process per completion index), against real PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap

import kubernetes_validate
import psycopg
import pytest

from infra.components.kubernetes.fleet import FLEET_DIR, SQL_DIR
from policy import policies
from shipshape.ops.fleets import plan, spec
from tests.conftest import ROOT, create_database, drop_database, dsn_for
from tests.infra.harness import TEST_GATE_IMAGE, plaintext_leaks, run_stack
from tests.infra.test_gate_job import applied
from tests.infra.test_gate_job import run as run_container
from tests.infra.test_kubernetes import (
    CONTRACT,
    DEPLOYMENT,
    JOB,
    K8S_VERSIONS,
    SECRET,
    manifest,
    offline,  # noqa: F401 - a fixture
    pod,
    variant_config,
)
from tests.treeutil import phased_tree, small_tree

CONFIGMAP = "kubernetes:core/v1:ConfigMap"
TENANT_DSNS = {"TENANT_A_URL": "postgresql://deploy:tenant-a-Pa55-41f0@pg-a.internal/tenant_a",
               "TENANT_B_URL": "postgresql://deploy:tenant-b-Pa55-93c2@pg-b.internal/tenant_b"}


@pytest.fixture(scope="module")
def fleet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fleet") / "tenants.yaml"
    path.write_text(textwrap.dedent("""
        fleet: tenants
        env: prod
        canary: {count: 1}
        databases:
          - {name: tenant-a, dsn_env: TENANT_A_URL, labels: {region: eu}}
          - {name: tenant-b, dsn_env: TENANT_B_URL}
          - {name: tenant-c, dsn: "postgresql://deploy@pg-c.internal/tenant_c"}
          - {name: tenant-d, dsn: "postgresql://deploy@pg-d.internal/tenant_d"}
          - {name: tenant-e, dsn: "postgresql://deploy@pg-e.internal/tenant_e"}
    """).lstrip())
    return path


def fleet_config(fleet_file, *, set_=None, secrets=None, drop=()):
    stack, config, secret_keys, _ = variant_config("prod-k8s")
    config.update({"shipshape:fleet_file": str(fleet_file), "shipshape:fleet_shards": "4",
                   "shipshape:fleet_parallel": "8",
                   "shipshape:fleet_dsns": json.dumps(TENANT_DSNS), **(set_ or {})})
    secret_keys = [*secret_keys, "shipshape:fleet_dsns"]
    for key in drop:
        config.pop(key, None)
    return stack, config, secret_keys


@pytest.fixture(scope="module")
def recorded(fleet_file):
    stack, config, secret_keys = fleet_config(fleet_file)
    return run_stack(stack, config, secret_keys)


def fleet_job(recorded, name: str = "fleet"):
    return recorded.one(JOB, name)


def pod_metadata(job) -> dict:
    return job.inputs["spec"]["template"]["metadata"]


def but_command(container: dict) -> dict:
    return {k: v for k, v in container.items() if k != "command"}


# The two Jobs: `fleet` runs the expand phase after the gate, `fleet-contract` the contract
# phase after the app's rollout.
PHASES = [("fleet", "expand"), ("fleet-contract", "contract")]


@pytest.mark.parametrize("name, phase", PHASES)
def test_one_pod_per_shard_each_running_its_shard(recorded, fleet_file, name, phase):
    job = fleet_job(recorded, name)
    spec_ = job.inputs["spec"]
    assert spec_["completionMode"] == "Indexed"
    assert spec_["completions"] == spec_["parallelism"] == 4
    (container,) = pod(job)["containers"]
    assert container["command"] == [
        "invoke", "fleet.deploy", "--fleet", "/srv/fleet/fleet.yaml", "--sql-dir", "/srv/sql",
        "--shard", "$(SHARD_INDEX)/4", "--parallel", "8", "--phase", phase]
    (index,) = [e for e in container["env"] if e["name"] == "SHARD_INDEX"]
    assert index["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']")
    # What Kubernetes makes of it for each index: shards that cover the fleet exactly once
    fleet = spec.load(fleet_file)
    taken = []
    for i in range(4):
        shard = re.sub(r"\$\(SHARD_INDEX\)", str(i), container["command"][7])
        taken += [m.name for m in plan.select(fleet, plan.parse_shard(shard))]
    assert sorted(taken) == sorted(m.name for m in fleet.members)


def test_the_fleet_file_is_mounted_and_the_dsns_come_from_a_secret(recorded, fleet_file):
    job = fleet_job(recorded)
    files = recorded.one(CONFIGMAP, "fleet-file")
    assert files.inputs["data"] == {"fleet.yaml": fleet_file.read_text()}
    assert files.inputs["immutable"] is True
    dsns = recorded.one(SECRET, "fleet-dsns")
    assert dsns.inputs["stringData"] == TENANT_DSNS and dsns.inputs["immutable"] is True
    (container,) = pod(job)["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": dsns.outputs["metadata"]["name"]}}]
    volumes = {v["name"]: v for v in pod(job)["volumes"]}
    assert volumes["fleet"]["configMap"]["name"] == files.outputs["metadata"]["name"]
    for resource in recorded.resources:
        assert plaintext_leaks(resource.wire, ["Pa55-41f0", "Pa55-93c2"]) == [], resource.name


def test_the_fleet_waits_for_the_gate_and_pulumi_waits_for_the_fleet(recorded):
    job = fleet_job(recorded)
    gate = recorded.one(JOB, "migration-gate")
    assert gate.urn in job.dependencies
    assert policies.SKIP_AWAIT not in job.inputs["metadata"].get("annotations", {})
    assert int(job.custom_timeouts["create"].rstrip("m")) * 60 > job.inputs["spec"][
        "activeDeadlineSeconds"]
    assert job.replace_on_changes == ["spec"] and "name" not in job.inputs["metadata"]
    (container,) = pod(job)["containers"]
    assert container["image"] == pod(gate)["initContainers"][0]["image"]
    eviction, rule = job.inputs["spec"]["podFailurePolicy"]["rules"]
    assert eviction["action"] == "Ignore"  # a drained node is no failure of a shard
    assert eviction["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2, 3, 5, 6]


def test_the_contract_job_runs_after_the_rollout_and_the_expand_job(recorded):
    expand, contract = fleet_job(recorded), fleet_job(recorded, "fleet-contract")
    deployment = recorded.one(DEPLOYMENT)
    # pulumi-kubernetes awaits the Deployment's rollout and the expand Job's completion
    assert deployment.urn in contract.dependencies and expand.urn in contract.dependencies
    assert deployment.urn not in expand.dependencies  # expand does not wait for the app
    assert contract.urn not in deployment.dependencies
    assert policies.SKIP_AWAIT not in contract.inputs["metadata"].get("annotations", {})
    assert contract.parent == expand.parent  # one FleetJob component


def test_the_contract_job_retries_only_a_refusal_as_the_contract_gate(recorded):
    contract = fleet_job(recorded, "fleet-contract")
    eviction, rule = contract.inputs["spec"]["podFailurePolicy"]["rules"]
    assert eviction["action"] == "Ignore" and "onPodConditions" in eviction
    # a member where a replica of the older release is still registered: exit 3, retried
    assert rule == {"action": "FailJob", "onExitCodes": {
        "containerName": "fleet", "operator": "NotIn", "values": [3]}}
    gate_eviction, gate_rule = recorded.one(JOB, CONTRACT).inputs["spec"]["podFailurePolicy"][
        "rules"]
    assert gate_eviction == eviction
    assert {**gate_rule["onExitCodes"], "containerName": "fleet"} == rule["onExitCodes"]
    assert contract.inputs["spec"]["backoffLimit"] >= 3 * 4  # a few retries per shard
    assert pod(contract)["restartPolicy"] == "Never"  # podFailurePolicy requires it
    assert int(contract.custom_timeouts["create"].rstrip("m")) * 60 > contract.inputs["spec"][
        "activeDeadlineSeconds"]
    assert contract.replace_on_changes == ["spec"] and contract.delete_before_replace is False
    assert "name" not in contract.inputs["metadata"]
    assert contract.inputs["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true"


def test_both_jobs_run_the_same_pod_but_for_the_phase(recorded):
    expand, contract = (pod(fleet_job(recorded, name)) for name, _ in PHASES)
    (expand_container,), (contract_container,) = expand["containers"], contract["containers"]
    assert expand_container["command"][:-1] == contract_container["command"][:-1]
    # the image, the env, the DSNs, the mounts, the resources
    assert but_command(expand_container) == but_command(contract_container)
    assert expand["volumes"] == contract["volumes"]  # the one fleet file ConfigMap
    assert len(recorded.of_type(CONFIGMAP)) == 1 and len(
        [r for r in recorded.of_type(SECRET) if r.name == "fleet-dsns"]) == 1


def test_what_reruns_each_fleet_job(fleet_file):
    stack, config, secret_keys = fleet_config(fleet_file)
    before = run_stack(stack, config, secret_keys)

    def changed(after) -> set:
        return {name for name, _ in PHASES
                if fleet_job(after, name).inputs["spec"] != fleet_job(before, name).inputs["spec"]}

    assert changed(run_stack(stack, config, secret_keys)) == set()  # no change, no run
    annotations = pod_metadata(fleet_job(before, "fleet-contract"))["annotations"]
    assert annotations["shipshape.io/app-image"] == pod(
        before.one(DEPLOYMENT))["containers"][0]["image"]
    app_image = config["shipshape:app_image"]
    released = {**config, "shipshape:app_image": app_image.replace(app_image[-64:], "c3" * 32)}
    assert changed(run_stack(stack, released, secret_keys)) == {"fleet-contract"}
    tools = {**config, "shipshape:gate_image": TEST_GATE_IMAGE.replace("b2" * 32, "e5" * 32)}
    assert changed(run_stack(stack, tools, secret_keys)) == {"fleet", "fleet-contract"}


def test_it_passes_the_policy_pack_and_the_schema(recorded, offline):  # noqa: F811
    from tests.infra.test_policy import validate

    fleet_resources = [r for r in recorded.resources if r.type.startswith("kubernetes:")
                       and r.name in ("fleet", "fleet-contract", "fleet-file", "fleet-dsns")]
    assert {r.type for r in fleet_resources} == {JOB, CONFIGMAP, SECRET}
    for resource in fleet_resources:
        for policy in policies.POLICIES:
            assert validate(policy, resource.inputs, resource_type=resource.type,
                            secret_outputs=resource.additional_secret_outputs) == [], \
                (policy.name, resource.name)
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(manifest(resource), version, strict=True)


def test_without_a_fleet_file_there_is_neither_fleet_job():
    stack, config, secret_keys, _ = variant_config("prod-k8s")
    recorded = run_stack(stack, config, secret_keys)
    assert sorted(r.name for r in recorded.of_type(JOB)) == ["contract-gate", "migration-gate"]


@pytest.mark.parametrize("change, says", [
    ({"set_": {"shipshape:fleet_shards": "0"}}, "fleet_shards is '0'"),
    ({"drop": ("shipshape:fleet_dsns",)}, "fleet_dsns is required"),
    ({"set_": {"shipshape:fleet_file": "/nonexistent/fleet.yaml"}}, "no such file"),
])
def test_a_wrong_fleet_configuration_names_the_key(fleet_file, change, says):
    from infra.config import StackConfigError

    stack, config, secret_keys = fleet_config(fleet_file, **change)
    with pytest.raises(StackConfigError, match=says):
        run_stack(stack, config, secret_keys)


def test_a_fleet_dsn_missing_from_the_secret_fails_the_preview(fleet_file):
    from infra.config import StackConfigError

    stack, config, secret_keys = fleet_config(fleet_file)
    config["shipshape:fleet_dsns"] = json.dumps({"TENANT_A_URL": TENANT_DSNS["TENANT_A_URL"]})
    with pytest.raises(StackConfigError, match="no DSN for TENANT_B_URL") as caught:
        run_stack(stack, config, secret_keys)
    assert "Pa55" not in str(caught.value)
    config["shipshape:fleet_dsns"] = "postgresql://deploy:Pa55-x@h/db"
    with pytest.raises(StackConfigError, match="not a JSON object") as caught:
        run_stack(stack, config, secret_keys)
    assert "Pa55" not in str(caught.value)


def test_a_malformed_fleet_file_fails_the_preview_with_its_line(tmp_path):
    from infra.config import StackConfigError

    broken = tmp_path / "broken.yaml"
    broken.write_text("env: prod\ndatabases:\n  - {name: a, dsn_env: A_URL\n")
    stack, config, secret_keys = fleet_config(broken)
    with pytest.raises(StackConfigError, match=rf"{broken}:\d+: not valid YAML"):
        run_stack(stack, config, secret_keys)


# --- the rendered pods, run as Kubernetes runs them, against real PostgreSQL ---------------

@pytest.fixture
def members(admin_dsn):
    """Three empty databases, by the dsn_env variable the fleet file names them with."""
    names = [create_database(admin_dsn) for _ in range(3)]
    yield {f"TENANT_{i}_URL": dsn_for(admin_dsn, name) for i, name in enumerate(names)}
    for name in names:
        drop_database(admin_dsn, name)


@pytest.fixture
def rendered(members, tmp_path):
    """The stack rendered with a fleet of those databases in 2 shards, and the image's
    working directory (tasks.py and a tree with a contract migration, as gate.Dockerfile)."""
    fleet_yaml = tmp_path / "tenants.yaml"
    fleet_yaml.write_text("fleet: tenants\nenv: dev\ncanary: {count: 1}\ndatabases:\n" + "".join(
        f"  - {{name: tenant-{i}, dsn_env: {variable}}}\n" for i, variable in enumerate(members)))
    stack, config, secret_keys = fleet_config(fleet_yaml, set_={
        "shipshape:fleet_shards": "2", "shipshape:fleet_dsns": json.dumps(members)})
    image = tmp_path / "srv"
    phased_tree(small_tree(image / "sql"))
    shutil.copy(ROOT / "tasks.py", image / "tasks.py")
    return run_stack(stack, config, secret_keys), image


def run_pod(recorded, job_name: str, index: int, image) -> subprocess.CompletedProcess:
    """Pod `index` of the Job: its command with the completion index, the manifest's env,
    the Secret's DSNs (envFrom), the ConfigMap's file where the pod mounts it."""
    (container,) = pod(recorded.one(JOB, job_name))["containers"]
    mounted = image / "fleet"
    mounted.mkdir(exist_ok=True)
    (mounted / "fleet.yaml").write_text(recorded.one(CONFIGMAP, "fleet-file").inputs["data"][
        "fleet.yaml"])
    env = {"PATH": os.environ["PATH"], "HOME": str(image),
           **recorded.one(SECRET, "fleet-dsns").inputs["stringData"]}
    for entry in container["env"]:
        env[entry["name"]] = str(index) if "valueFrom" in entry else entry["value"]
    # /tmp is the pod's own emptyDir: here, this test's directory
    env.update(SHIPSHAPE_STATE_DIR=str(image / "state"), SHIPSHAPE_REPORTS_DIR=str(image / "reports"))
    command = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg)
               .replace(FLEET_DIR, str(mounted)).replace(SQL_DIR, str(image / "sql"))
               for arg in container["command"]]
    return run_container({**container, "command": command}, env, image)


def run_job(recorded, job_name: str, image) -> list[int]:
    """Every pod of the Indexed Job; their exit codes, in index order."""
    completions = int(recorded.one(JOB, job_name).inputs["spec"]["completions"])  # JSON: 2.0
    return [run_pod(recorded, job_name, i, image).returncode for i in range(completions)]


def test_the_expand_pods_leave_the_contract_and_the_contract_pods_apply_it(rendered, members):
    recorded, image = rendered
    assert run_job(recorded, "fleet", image) == [0, 0]
    for dsn in members.values():
        assert applied(dsn) == [1, 2, 3]  # 0004 (contract) pending on every member
    assert run_job(recorded, "fleet-contract", image) == [0, 0]
    for dsn in members.values():
        assert applied(dsn) == [1, 2, 3, 4]


def test_a_refused_contract_pod_exits_3_and_its_retry_finishes_the_shard(rendered, members):
    recorded, image = rendered
    assert run_job(recorded, "fleet", image) == [0, 0]
    old = members["TENANT_0_URL"]
    with psycopg.connect(old) as conn:  # a replica of release 0003 still heartbeats there
        conn.execute("INSERT INTO shipshape.app_instances (instance, release, host) "
                     "VALUES ('api-old-1', 3, 'node-a')")
    codes = run_job(recorded, "fleet-contract", image)
    # exit 3: the one exit the Job's podFailurePolicy retries; the other shard is done
    assert sorted(codes) == [0, 3]
    assert applied(old) == [1, 2, 3]
    with psycopg.connect(old) as conn:  # the old pod has left
        conn.execute("DELETE FROM shipshape.app_instances")
    retry = run_pod(recorded, "fleet-contract", codes.index(3), image)
    assert retry.returncode == 0, (retry.stdout, retry.stderr)
    for dsn in members.values():
        assert applied(dsn) == [1, 2, 3, 4]
