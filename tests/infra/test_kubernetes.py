"""The kubernetes platform under pulumi.runtime.set_mocks: the graph, every field the
platform promises, secrets kept secret, the policy pack, and every rendered manifest
validated against the Kubernetes OpenAPI schema, offline (kubernetes-validate ships it)."""

from __future__ import annotations

import hashlib
import socket

import kubernetes_validate
import pytest

from infra.config import POSTGRES_MAJOR
from policy import policies
from shipshape import outputs
from shipshape.settings import load_environment
from tests.infra.harness import (
    TEST_GATE_IMAGE,
    TEST_SECRETS,
    is_secret,
    plaintext_leaks,
    run_stack,
    stack_config,
)

STACK_FILE = "Pulumi.prod-k8s.yaml"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
SECRET = "kubernetes:core/v1:Secret"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
NAMESPACE = "kubernetes:core/v1:Namespace"
CLUSTER = "kubernetes:postgresql.cnpg.io/v1:Cluster"
GATE, CONTRACT = "migration-gate", "contract-gate"   # the two Jobs' resource names
EXTERNAL_DSN = "postgresql://admin:ext-Su-Pa55-71c0@pg.example.internal:6432/avatar_creator?sslmode=verify-full"
REGISTRY_PASSWORD = "reg-Pa55-93e1"
# Kubernetes versions the manifests are validated against: the oldest still served by the
# managed offerings this targets, and the newest the installed schemas know.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())

VARIANTS = {
    # the stack file as committed: CloudNativePG, three instances, an autoscaler
    "prod-k8s": ("prod-k8s", {}, {}),
    # a managed PostgreSQL: no Cluster, its DSN a stack secret
    "prod-k8s-external": ("prod-k8s", {"shipshape:db_provider": "external",
                                       "shipshape:app_max_replicas": None,
                                       "shipshape:postgres_image": None},
                          {"shipshape:database_url": EXTERNAL_DSN}),
    # dev on a cluster: builds both images and pushes them, placeholder provider
    "dev-k8s": ("dev-k8s", {"shipshape:profile": "dev", "shipshape:k8s_namespace": "avatar-dev",
                            "shipshape:generation_provider": "placeholder",
                            "shipshape:image_registry": "registry.example.com/shipshape",
                            "shipshape:registry_username": "ci", "shipshape:protect_data": "false",
                            "shipshape:db_instances": "1", "shipshape:app_max_replicas": None,
                            "shipshape:app_replicas": "1"},
                {"shipshape:registry_password": REGISTRY_PASSWORD}),
}


def variant_config(variant: str):
    stack, set_, extra_secrets = VARIANTS[variant]
    set_ = dict(set_)
    drop = tuple(key for key, value in set_.items() if value is None)
    set_ = {key: value for key, value in set_.items() if value is not None}
    secrets = dict(TEST_SECRETS)
    if "shipshape:database_url" in extra_secrets:
        secrets.pop("shipshape:db_superuser_password")
    secrets.update(extra_secrets)
    config, secret_keys = stack_config(stack, file=STACK_FILE, set_=set_, secrets=secrets, drop=drop)
    return stack, config, secret_keys, secrets


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def k8s(request):
    """(variant, recorded, the secrets it was given) for each variant, run once per module."""
    stack, config, secret_keys, secrets = variant_config(request.param)
    return request.param, run_stack(stack, config, secret_keys), secrets


def manifest(resource) -> dict:
    """The manifest pulumi-kubernetes would send: the resource's inputs, numbers as JSON
    has them (the engine's protobuf carries every number as a double), plus the name and
    namespace the API server would give an auto-named resource."""

    def plain(value):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    document = plain(resource.inputs)
    document["metadata"] = {**plain(resource.outputs.get("metadata") or {}), **document.get("metadata", {})}
    document["metadata"]["name"] = resource.outputs["metadata"]["name"]
    document["metadata"].pop("uid", None)  # read-only: set by the server, not in a manifest
    return document


def kubernetes_resources(recorded):
    return [r for r in recorded.resources if r.type.startswith("kubernetes:")]


def pod(resource) -> dict:
    return resource.inputs["spec"]["template"]["spec"]


# --- the graph ---------------------------------------------------------------------------

def test_one_graph_of_the_same_components_as_the_docker_platform(k8s):
    variant, recorded, _ = k8s
    components = {r.name: r for r in recorded.resources if r.type.startswith("shipshape:infra:")}
    assert set(components) == {"network", "database", "migration-gate", "app", "contract-gate"}
    # each gate under its own type (the contract gate's first release registered as a
    # MigrationGate; an alias keeps a stack deployed then)
    assert components["contract-gate"].type == "shipshape:infra:ContractGate"
    assert components["migration-gate"].type == "shipshape:infra:MigrationGate"
    assert recorded.one(JOB, CONTRACT).urn.split("::")[2].startswith(
        "shipshape:infra:ContractGate$kubernetes:batch/v1:Job")
    for resource in recorded.resources:
        if not resource.type.startswith("shipshape:infra:"):
            assert recorded.by_urn(resource.parent).type.startswith("shipshape:infra:"), resource.name
    assert recorded.of_type("docker:index/container:Container") == []


def test_every_resource_goes_to_the_cluster_the_stack_file_names(k8s):
    variant, recorded, _ = k8s
    (provider,) = recorded.of_type("pulumi:providers:kubernetes")
    assert provider.inputs["context"] == "shipshape-prod"
    for resource in kubernetes_resources(recorded):
        assert resource.provider.startswith(provider.urn), resource.name
        if resource.type != NAMESPACE:
            expected = "avatar-dev" if variant == "dev-k8s" else "avatar-prod"
            assert resource.inputs["metadata"]["namespace"] == expected, resource.name
    namespace = recorded.one(NAMESPACE)
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


def test_the_app_waits_for_the_gate_and_the_gate_for_the_database(k8s):
    variant, recorded, _ = k8s
    job, deployment = recorded.one(JOB, GATE), recorded.one(DEPLOYMENT)
    assert job.urn in deployment.dependencies
    clusters = recorded.of_type(CLUSTER)
    if variant.endswith("external"):
        assert clusters == []
    else:
        assert clusters[0].urn in job.dependencies
        assert clusters[0].inputs["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Ready"
    for resource in (job, deployment):  # awaited: that is what orders the rollout after the gate
        assert policies.SKIP_AWAIT not in (resource.inputs["metadata"].get("annotations") or {})


# --- the Deployment, Service, PDB, HPA ----------------------------------------------------

def test_the_deployment_rolls_without_losing_capacity_and_probes_the_right_routes(k8s):
    _, recorded, _ = k8s
    spec = recorded.one(DEPLOYMENT).inputs["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    (container,) = pod(recorded.one(DEPLOYMENT))["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_the_pods_run_unprivileged_non_root_on_a_read_only_root(k8s):
    _, recorded, _ = k8s
    for workload in (recorded.one(DEPLOYMENT), recorded.one(JOB, GATE), recorded.one(JOB, CONTRACT)):
        spec = pod(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001  # app/Dockerfile's USER
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"] + spec.get("initContainers", []):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False and security["privileged"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
            limits, requests = container["resources"]["limits"], container["resources"]["requests"]
            assert set(limits) == set(requests) == {"cpu", "memory"}


def test_the_app_resources_come_from_the_stack_file():
    stack, config, secret_keys, _ = variant_config("prod-k8s")
    recorded = run_stack(stack, config, secret_keys)
    (container,) = pod(recorded.one(DEPLOYMENT))["containers"]
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"},
                                      "limits": {"cpu": "1", "memory": "512Mi"}}


def test_service_disruption_budget_and_autoscaler(k8s):
    variant, recorded, _ = k8s
    service = recorded.one(SERVICE).inputs["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    selector = recorded.one(DEPLOYMENT).inputs["spec"]["selector"]["matchLabels"]
    assert service["selector"] == selector
    assert recorded.one(PDB).inputs["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}
    deployment = recorded.one(DEPLOYMENT)
    autoscalers = recorded.of_type(HPA)
    if variant == "prod-k8s":
        (hpa,) = autoscalers
        assert hpa.inputs["spec"]["minReplicas"] == 3 and hpa.inputs["spec"]["maxReplicas"] == 10
        assert hpa.inputs["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                        "name": deployment.inputs["metadata"]["name"]}
        assert "replicas" not in deployment.inputs["spec"]  # the autoscaler owns the count
    else:
        assert autoscalers == []
        assert deployment.inputs["spec"]["replicas"] == (1 if variant == "dev-k8s" else 3)


# --- the migration gate Job --------------------------------------------------------------

def test_the_gate_job_runs_shipshapes_deploy_then_the_app_login(k8s):
    variant, recorded, _ = k8s
    job = recorded.one(JOB, GATE)
    profile = "dev" if variant == "dev-k8s" else "prod"
    spec = pod(job)
    (deploy,) = spec["initContainers"]
    (login,) = spec["containers"]
    # the stack's name, as an operator's `invoke deploy --env <stack>`: one database stamp
    stack = VARIANTS[variant][0]
    assert deploy["command"] == ["invoke", "deploy", "--env", stack, "--phase", "expand"]
    assert login["command"] == ["python", "-m", "shipshape.pulumi_gate.gate", "app-login"]
    assert spec["restartPolicy"] == "Never"
    assert deploy["image"] == login["image"] == recorded.outputs[outputs.GATE_IMAGE]
    # Every setting as SHIPSHAPE_<SETTING>, the tasks' highest precedence after flags: the
    # stack file's values over the profile's defaults, whatever stack files the image holds;
    # the image holds none, so the profile comes as SHIPSHAPE_PROFILE.
    settings = {e["name"]: e["value"] for e in deploy["env"] if "value" in e}
    environment = load_environment(stack, config_dir="/nonexistent", environ=settings)
    assert (environment.name, environment.profile) == (stack, profile)
    assert environment.seed_sets == ("reference",)           # Pulumi.prod-k8s.yaml
    assert environment.lock_timeout == "3s" and environment.lock_retries == 5
    assert environment.allow_destructive is False and environment.concurrent_indexes is True
    assert environment.lock_retry_backoff == "500ms"         # the profile's default
    assert environment.app_url == ""  # deploy's app gate is skipped: the app starts after it
    # expand, whatever the stack file's deploy_phase: never a contract before the rollout
    assert environment.deploy_phase == "expand"
    assert {f"SHIPSHAPE_{key.upper()}" for key in environment.context() if key != "name"} <= set(settings)


def test_the_gate_job_takes_its_credentials_from_its_secret(k8s):
    _, recorded, _ = k8s
    job = recorded.one(JOB, GATE)
    credentials = recorded.one(SECRET, "migration-gate-credentials")
    name = credentials.outputs["metadata"]["name"]
    assert set(credentials.inputs["stringData"]) == {"DATABASE_URL", "APP_DB_PASSWORD"}
    spec = pod(job)
    refs = {(c["name"], e["name"]): e["valueFrom"]["secretKeyRef"]
            for c in spec["containers"] + spec["initContainers"] for e in c["env"] if "valueFrom" in e}
    assert refs == {("deploy", "DATABASE_URL"): {"name": name, "key": "DATABASE_URL"},
                    ("app-login", "DATABASE_URL"): {"name": name, "key": "DATABASE_URL"},
                    ("app-login", "APP_DB_PASSWORD"): {"name": name, "key": "APP_DB_PASSWORD"}}


def test_a_failing_gate_fails_the_update_and_is_replaced_next_time(k8s):
    _, recorded, _ = k8s
    job = recorded.one(JOB, GATE)
    # pulumi-kubernetes fails the update on the Job's Failed condition and awaits Complete
    # for the create timeout, which must outlast the Job's own deadline.
    deadline = job.inputs["spec"]["activeDeadlineSeconds"]
    assert int(job.custom_timeouts["create"].rstrip("m")) * 60 > deadline
    assert job.inputs["spec"]["backoffLimit"] <= 1
    assert "ttlSecondsAfterFinished" not in job.inputs["spec"]  # a deleted Job would re-run
    assert job.inputs["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true"
    assert job.replace_on_changes == ["spec"] and job.delete_before_replace is False
    assert "name" not in job.inputs["metadata"]  # auto-named: the new Job is created first


def test_a_recreated_database_reruns_the_gate_and_nothing_else_changes():
    stack, config, secret_keys, _ = variant_config("prod-k8s")
    before = run_stack(stack, config, secret_keys, generation=0)
    after = run_stack(stack, config, secret_keys, generation=1)  # the Cluster got a new uid
    annotation = "shipshape.io/database-id"
    old_job, new_job = before.one(JOB, GATE), after.one(JOB, GATE)
    assert old_job.inputs["spec"]["template"]["metadata"]["annotations"][annotation] == \
        before.one(CLUSTER).outputs["metadata"]["uid"]
    assert old_job.inputs["spec"] != new_job.inputs["spec"]  # replace_on_changes: a new Job
    old_spec = {**old_job.inputs["spec"], "template": {**old_job.inputs["spec"]["template"], "metadata": {}}}
    new_spec = {**new_job.inputs["spec"], "template": {**new_job.inputs["spec"]["template"], "metadata": {}}}
    assert old_spec == new_spec
    assert before.one(DEPLOYMENT).inputs == after.one(DEPLOYMENT).inputs


def test_a_new_tools_image_reruns_the_gate():
    stack, config, secret_keys, _ = variant_config("prod-k8s")
    before = run_stack(stack, config, secret_keys)
    config = {**config, "shipshape:gate_image": TEST_GATE_IMAGE.replace("b2" * 32, "e5" * 32)}
    after = run_stack(stack, config, secret_keys)
    assert before.one(JOB, GATE).inputs["spec"] != after.one(JOB, GATE).inputs["spec"]


# --- the contract gate Job ---------------------------------------------------------------

def test_the_contract_job_runs_deploy_phase_contract_after_the_rollout(k8s):
    variant, recorded, _ = k8s
    gate, contract, deployment = (recorded.one(JOB, GATE), recorded.one(JOB, CONTRACT),
                                  recorded.one(DEPLOYMENT))
    # after the Deployment, which pulumi-kubernetes awaits to the rollout's end (never
    # skipAwait); and so after the expand gate, which the Deployment depends on
    assert deployment.urn in contract.dependencies
    assert gate.urn in deployment.dependencies and contract.urn not in deployment.dependencies
    assert policies.SKIP_AWAIT not in contract.inputs["metadata"].get("annotations", {})
    spec = pod(contract)
    assert "initContainers" not in spec
    (deploy,) = spec["containers"]
    stack = VARIANTS[variant][0]
    assert deploy["command"] == ["invoke", "deploy", "--env", stack, "--phase", "contract"]
    settings = {e["name"]: e["value"] for e in deploy["env"] if "value" in e}
    assert settings["SHIPSHAPE_DEPLOY_PHASE"] == "contract"
    environment = load_environment(stack, config_dir="/nonexistent", environ=settings)
    assert environment.deploy_phase == "contract" and environment.app_url == ""
    assert deploy["image"] == pod(gate)["initContainers"][0]["image"]  # the same tree
    # only the superuser DSN, from its own Secret; the app role's password is not its business
    credentials = recorded.one(SECRET, "contract-gate-credentials")
    assert set(credentials.inputs["stringData"]) == {"DATABASE_URL"}
    refs = [e["valueFrom"]["secretKeyRef"] for e in deploy["env"] if "valueFrom" in e]
    assert refs == [{"name": credentials.outputs["metadata"]["name"], "key": "DATABASE_URL"}]


def test_the_deployment_strategy_the_contract_job_relies_on(k8s):
    _, recorded, _ = k8s
    spec = recorded.one(DEPLOYMENT).inputs["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    (container,) = pod(recorded.one(DEPLOYMENT))["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"


def test_the_contract_job_retries_only_a_refusal_and_fails_the_update_otherwise(k8s):
    _, recorded, _ = k8s
    job = recorded.one(JOB, CONTRACT)
    # exit 3: an old pod still registered while it terminates; retried with back-off
    # an eviction (a node drained) is no failure: ignored, and first, as the first match
    # decides; the run's own exit 130 on that SIGTERM would otherwise fail the update
    eviction, rule = job.inputs["spec"]["podFailurePolicy"]["rules"]
    assert eviction == {"action": "Ignore", "onPodConditions": [
        {"type": "DisruptionTarget", "status": "True"}]}
    assert rule == {"action": "FailJob", "onExitCodes": {
        "containerName": "deploy", "operator": "NotIn", "values": [3]}}
    assert job.inputs["spec"]["backoffLimit"] >= 3
    assert pod(job)["restartPolicy"] == "Never"  # podFailurePolicy requires it
    assert int(job.custom_timeouts["create"].rstrip("m")) * 60 > job.inputs["spec"]["activeDeadlineSeconds"]
    assert job.replace_on_changes == ["spec"] and job.delete_before_replace is False
    assert "name" not in job.inputs["metadata"]
    assert job.inputs["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true"


def test_a_new_app_release_or_tools_image_reruns_the_contract_job_and_nothing_else_does():
    stack, config, secret_keys, _ = variant_config("prod-k8s")
    before = run_stack(stack, config, secret_keys)
    again = run_stack(stack, config, secret_keys)
    assert before.one(JOB, CONTRACT).inputs == again.one(JOB, CONTRACT).inputs  # no change, no run
    annotations = before.one(JOB, CONTRACT).inputs["spec"]["template"]["metadata"]["annotations"]
    assert annotations["shipshape.io/app-image"] == pod(before.one(DEPLOYMENT))["containers"][0]["image"]
    released = run_stack(stack, {**config, "shipshape:app_image": config["shipshape:app_image"].replace(
        config["shipshape:app_image"][-64:], "c3" * 32)}, secret_keys)
    assert released.one(JOB, CONTRACT).inputs["spec"] != before.one(JOB, CONTRACT).inputs["spec"]
    assert released.one(JOB, GATE).inputs == before.one(JOB, GATE).inputs  # expand: unchanged
    tools = run_stack(stack, {**config, "shipshape:gate_image": TEST_GATE_IMAGE.replace(
        "b2" * 32, "e5" * 32)}, secret_keys)
    assert tools.one(JOB, CONTRACT).inputs["spec"] != before.one(JOB, CONTRACT).inputs["spec"]


# --- the database ------------------------------------------------------------------------

def test_cloudnativepg_cluster(k8s):
    variant, recorded, _ = k8s
    if variant.endswith("external"):
        pytest.skip("an external database has no Cluster")
    cluster = recorded.one(CLUSTER)
    spec = cluster.inputs["spec"]
    assert cluster.inputs["apiVersion"] == "postgresql.cnpg.io/v1" and cluster.inputs["kind"] == "Cluster"
    assert spec["instances"] == (1 if variant == "dev-k8s" else 3)
    assert spec["imageName"].split(":")[1].startswith(f"{POSTGRES_MAJOR}.")
    superuser = recorded.one(SECRET, "database-superuser")
    assert superuser.inputs["type"] == "kubernetes.io/basic-auth"
    assert spec["enableSuperuserAccess"] is True
    assert spec["superuserSecret"] == {"name": superuser.outputs["metadata"]["name"]}
    assert spec["bootstrap"]["initdb"]["database"] == "avatar_creator"
    assert spec["storage"]["size"] == "50Gi"
    assert cluster.protect is (variant != "dev-k8s")
    assert policies.missing_limits(CLUSTER, cluster.inputs) == []
    assert recorded.outputs[outputs.DATABASE_ENDPOINT] == (
        f"avatar-db-rw.{'avatar-dev' if variant == 'dev-k8s' else 'avatar-prod'}.svc:5432")
    assert recorded.of_type("kubernetes:apps/v1:StatefulSet") == []  # never hand-rolled


def test_an_external_database_is_reached_through_the_secret_dsn():
    stack, config, secret_keys, _ = variant_config("prod-k8s-external")
    recorded = run_stack(stack, config, secret_keys)
    assert recorded.of_type(CLUSTER) == [] and recorded.of_type(SECRET)
    assert recorded.outputs[outputs.DATABASE_ENDPOINT] == "pg.example.internal:6432"
    assert not is_secret(recorded.outputs_wire[outputs.DATABASE_ENDPOINT])
    app_dsn = recorded.one(SECRET, "app-credentials").inputs["stringData"]["DATABASE_URL"]
    assert app_dsn == ("postgresql://avatar_app:app-Pa55-6d3a18c0f5@pg.example.internal:6432/"
                       "avatar_creator?sslmode=verify-full")  # the app role, the server's TLS mode kept
    identity = recorded.one(JOB, GATE).inputs["spec"]["template"]["metadata"]["annotations"]["shipshape.io/database-id"]
    assert identity == hashlib.sha256(b"pg.example.internal:6432/avatar_creator").hexdigest()[:32]
    other = {**config, "shipshape:database_url": EXTERNAL_DSN.replace("pg.example", "pg2.example")}
    moved = run_stack(stack, other, secret_keys)
    assert moved.one(JOB, GATE).inputs["spec"] != recorded.one(JOB, GATE).inputs["spec"]


# --- images ------------------------------------------------------------------------------

def test_dev_builds_and_pushes_both_images_and_exports_their_digests():
    stack, config, secret_keys, _ = variant_config("dev-k8s")
    recorded = run_stack(stack, config, secret_keys)
    builds = {r.name: r for r in recorded.of_type("docker:index/image:Image")}
    assert set(builds) == {"app-image", "migration-gate-image"}
    assert builds["app-image"].inputs["imageName"] == "registry.example.com/shipshape/avatar-creator:dev-k8s"
    assert builds["migration-gate-image"].inputs["build"]["dockerfile"].endswith("infra/gate.Dockerfile")
    for build in builds.values():
        assert build.inputs.get("skipPush") is False
    (container,) = pod(recorded.one(DEPLOYMENT))["containers"]
    assert container["image"] == builds["app-image"].outputs["repoDigest"] == recorded.outputs[outputs.APP_IMAGE]
    assert recorded.outputs[outputs.GATE_IMAGE] == builds["migration-gate-image"].outputs["repoDigest"]


def test_prod_builds_nothing_and_runs_the_promoted_digests():
    stack, config, secret_keys, _ = variant_config("prod-k8s")
    recorded = run_stack(stack, config, secret_keys)
    assert recorded.of_type("docker:index/image:Image") == []
    (container,) = pod(recorded.one(DEPLOYMENT))["containers"]
    assert container["image"] == config["shipshape:app_image"]
    assert recorded.outputs[outputs.GATE_IMAGE] == config["shipshape:gate_image"]


# --- secrets -----------------------------------------------------------------------------

def test_no_secret_in_plain_text_in_any_manifest_state_or_output(k8s):
    variant, recorded, secrets = k8s
    values = [v for k, v in secrets.items()
              if variant == "prod-k8s-external" or k != "shipshape:database_url"]
    values = [v for v in values if variant != "dev-k8s" or "hf_" not in v]
    for resource in recorded.resources:
        assert plaintext_leaks(resource.wire, values) == [], resource.name
    assert plaintext_leaks(recorded.outputs_wire, values) == []
    for secret_resource in recorded.of_type(SECRET):
        assert is_secret(secret_resource.wire["stringData"]), secret_resource.name
        assert secret_resource.inputs["immutable"] is True
        assert "name" not in secret_resource.inputs["metadata"]  # a new value, a new name
    for name in (outputs.DATABASE_URL, outputs.APP_DATABASE_URL):
        assert is_secret(recorded.outputs_wire[name])
    assert set(recorded.outputs) == set(outputs.KUBERNETES)


def test_the_huggingface_key_reaches_only_the_app_and_only_where_it_is_used(k8s):
    variant, recorded, _ = k8s
    keys = set(recorded.one(SECRET, "app-credentials").inputs["stringData"])
    assert keys == ({"DATABASE_URL"} if variant == "dev-k8s" else {"DATABASE_URL", "HUGGINGFACE_API_KEY"})
    assert "HUGGINGFACE_API_KEY" not in recorded.one(SECRET, "migration-gate-credentials").inputs["stringData"]


# --- the policy pack and the schema ------------------------------------------------------

def test_every_resource_passes_the_policy_pack(k8s):
    from tests.infra.test_policy import validate

    _, recorded, _ = k8s
    for resource in recorded.resources:
        for policy in policies.POLICIES:
            assert validate(policy, resource.inputs, resource_type=resource.type,
                            secret_outputs=resource.additional_secret_outputs) == [], \
                (policy.name, resource.name)


@pytest.fixture
def offline(monkeypatch):
    """No network: the schemas must come from the installed package."""
    def refuse(*args, **kwargs):
        raise AssertionError("tried to open a network connection")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_every_manifest_is_valid_against_the_kubernetes_schema_offline(k8s, offline):
    _, recorded, _ = k8s
    checked = set()
    for resource in kubernetes_resources(recorded):
        if resource.type == CLUSTER:
            continue  # a CRD's schema is the operator's, not in the Kubernetes OpenAPI
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(manifest(resource), version, strict=True)
        checked.add(resource.inputs["kind"])
    assert {"Namespace", "Secret", "Job", "Deployment", "Service", "PodDisruptionBudget"} <= checked


def test_the_schema_validation_can_fail(k8s, offline):
    _, recorded, _ = k8s
    bad = manifest(recorded.one(DEPLOYMENT))
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)
    bad = manifest(recorded.one(DEPLOYMENT))
    bad["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = [0]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)


# --- configuration -----------------------------------------------------------------------

@pytest.mark.parametrize("variant, change, says", [
    ("prod-k8s", {"shipshape:k8s_context": None}, "k8s_context is required"),
    ("prod-k8s-external", {"shipshape:database_url": None}, "database_url is required"),
    ("prod-k8s", {"shipshape:db_provider": "statefulset"}, "must be one of cloudnativepg, external"),
    ("prod-k8s", {"shipshape:gate_image": "registry.example.com/shipshape-gate:1.0"}, "not an image digest"),
    ("prod-k8s", {"shipshape:app_max_replicas": "2"}, "below shipshape:app_replicas"),
    ("prod-k8s", {"shipshape:db_port": "5432"}, "only the docker platform reads it"),
    ("prod-k8s", {"shipshape:app_memory_limit": "lots"}, "not a Kubernetes quantity"),
    ("dev-k8s", {"shipshape:image_registry": None}, "a cluster can only pull a pushed image"),
    ("prod-k8s-external", {"shipshape:postgres_image": "postgres:18.6-alpine"}, "external database"),
])
def test_configuration_errors_name_the_key_and_the_fix(variant, change, says):
    from infra.config import StackConfigError

    stack, config, secret_keys, _ = variant_config(variant)
    for key, value in change.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    with pytest.raises(StackConfigError, match=says):
        run_stack(stack, config, secret_keys)
