"""The policy pack's validate functions, called as the policy engine calls them."""

from __future__ import annotations

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
)

from policy import policies

SECRET_OPTS = ["envs"]


def validate(policy, props, *, secret_outputs=SECRET_OPTS, config=None,
             resource_type=policies.CONTAINER, name="db"):
    """The violations `policy` reports for one resource."""
    opts = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0),
                                 list(secret_outputs))
    args = ResourceValidationArgs(resource_type, props, f"urn:pulumi:dev::shipshape::{resource_type}::{name}",
                                  name, opts, None, config or {})
    violations = []
    policy.validate(args, lambda message, urn=None: violations.append(message))
    return violations


def postgres(**overrides):
    props = {
        "image": "sha256:abc",
        "labels": [{"label": "shipshape.role", "value": "database"}],
        "ports": [{"internal": 5432, "external": 55432, "ip": "127.0.0.1", "protocol": "tcp"}],
        "envs": ["POSTGRES_USER=postgres", "POSTGRES_PASSWORD=Zq8-generated-9f2", "POSTGRES_DB=avatar_creator"],
    }
    props.update(overrides)
    return props


port_policy = policies.database_port_loopback_only
secret_policy = policies.no_plaintext_secret_in_container_env


def test_every_policy_is_mandatory():
    assert {p.name for p in policies.POLICIES} == {
        "database-port-loopback-only", "no-plaintext-secret-in-container-env",
        "kubernetes-database-not-exposed", "kubernetes-resource-limits",
        "kubernetes-no-privileged-pod", "no-plaintext-secret-in-kubernetes-env",
        "kubernetes-rollout-awaited", "no-latest-image", "image-by-digest-outside-dev"}
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in policies.POLICIES)


def test_a_database_on_loopback_passes():
    assert validate(port_policy, postgres()) == []
    assert validate(port_policy, postgres(ports=[{"internal": 5432, "external": 5432, "ip": "::1"}])) == []


@pytest.mark.parametrize("props, says", [
    (postgres(ports=[{"internal": 5432, "external": 5432}]), "on every interface"),  # Docker's default
    (postgres(ports=[{"internal": 5432, "external": 5432, "ip": "0.0.0.0"}]), "on every interface"),
    (postgres(ports=[{"internal": 5432, "external": 5432, "ip": "203.0.113.7"}]), "on 203.0.113.7"),
    (postgres(ports=[], publishAllPorts=True), "publish_all_ports"),
    (postgres(ports=[], networkMode="host"), "host networking"),
])
def test_a_database_published_beyond_loopback_is_a_violation(props, says):
    violations = validate(port_policy, props)
    assert len(violations) == 1 and says in violations[0]
    assert "127.0.0.1" in violations[0]  # says how to fix it


def test_a_database_is_recognised_by_label_image_or_port():
    public = [{"internal": 5432, "external": 5432, "ip": "0.0.0.0"}]
    assert validate(port_policy, {"image": "postgres:15.10-alpine", "ports": [
        {"internal": 5433, "external": 5433}]}) != []
    assert validate(port_policy, {"image": "sha256:abc", "ports": public}) != []
    app = {"image": "sha256:app", "labels": [{"label": "shipshape.role", "value": "app"}],
           "ports": [{"internal": 8000, "external": 8000, "ip": "0.0.0.0"}]}
    assert validate(port_policy, app) == []  # an app may be public; only the database may not


def test_an_allowed_private_address_passes_when_configured():
    props = postgres(ports=[{"internal": 5432, "external": 5432, "ip": "10.0.0.5"}])
    assert validate(port_policy, props) != []
    assert validate(port_policy, props, config={"allowedAddresses": ["127.0.0.1", "10.0.0.5"]}) == []


def test_other_resource_types_are_not_checked():
    assert validate(port_policy, {"name": "shipshape-dev"}, resource_type="docker:index/network:Network") == []
    assert validate(secret_policy, {"envs": ["PASSWORD=postgres"]},
                    resource_type="docker:index/service:Service") == []


def test_container_env_kept_secret_passes():
    assert validate(secret_policy, postgres()) == []
    app = {"envs": ["APP_ENV=dev", "DATABASE_URL=postgresql://avatar_app:Xk2-generated-77@db:5432/a",
                    "HUGGINGFACE_API_KEY=hf_generated_2b8"]}
    assert validate(secret_policy, app) == []


def test_a_container_without_secrets_needs_nothing():
    assert validate(secret_policy, {"envs": ["APP_ENV=dev", "APP_PORT=8000"]}, secret_outputs=[]) == []


@pytest.mark.parametrize("entry, name", [
    ("POSTGRES_PASSWORD=Zq8-generated-9f2", "POSTGRES_PASSWORD"),
    ("HUGGINGFACE_API_KEY=hf_abc", "HUGGINGFACE_API_KEY"),
    ("GITHUB_TOKEN=ghp_abc", "GITHUB_TOKEN"),
    ("DATABASE_URL=postgresql://app:Xk2-generated@db:5432/a", "DATABASE_URL"),
])
def test_a_secret_in_an_env_that_is_not_kept_secret_is_a_violation(entry, name):
    violations = validate(secret_policy, {"envs": ["APP_ENV=dev", entry]}, secret_outputs=[])
    assert len(violations) == 1
    assert name in violations[0] and "additional_secret_outputs=['envs']" in violations[0]
    assert entry.split("=", 1)[1] not in violations[0]  # the message never repeats the secret


@pytest.mark.parametrize("entry", [
    "POSTGRES_PASSWORD=postgres",
    "POSTGRES_PASSWORD=changeme",
    "DATABASE_URL=postgresql://avatar_app:password@db:5432/a",
    "DB_PASSWORD=",
])
def test_a_well_known_default_secret_is_a_violation_even_when_kept_secret(entry):
    violations = validate(secret_policy, {"envs": [entry]})
    assert len(violations) == 1 and "well-known default" in violations[0]


def test_the_pack_module_assembles_the_policies():
    from pathlib import Path

    source = Path(policies.__file__).with_name("__main__.py").read_text()
    assert "PolicyPack(" in source and "policies=POLICIES" in source


# --- Kubernetes ------------------------------------------------------------------------

DEPLOYMENT = policies.K8S_DEPLOYMENT
DIGEST = "registry.example.com/avatar-creator@sha256:" + "c3" * 32


def container(**overrides):
    base = {"name": "api", "image": DIGEST,
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                          "limits": {"cpu": "1", "memory": "512Mi"}},
            "securityContext": {"privileged": False, "allowPrivilegeEscalation": False},
            "env": [{"name": "APP_ENV", "value": "prod"},
                    {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "app-x", "key": "DATABASE_URL"}}}]}
    base.update(overrides)
    return base


def deployment(*containers, profile="prod", init=(), annotations=None, **pod):
    return {"metadata": {"labels": {policies.PROFILE_LABEL: profile} if profile else {},
                         "annotations": annotations or {}},
            "spec": {"template": {"spec": {"containers": list(containers) or [container()],
                                           "initContainers": list(init), **pod}}}}


def service(type_, **spec):
    return {"metadata": {"labels": {"app.kubernetes.io/component": "api"}},
            "spec": {"type": type_, "selector": {"app": "x"}, "ports": [{"port": 8000}], **spec}}


def check(policy, props, resource_type=DEPLOYMENT):
    return validate(policy, props, resource_type=resource_type, name="it")


exposed = policies.kubernetes_database_not_exposed
limits = policies.kubernetes_resource_limits
privileged = policies.kubernetes_no_privileged_pod
k8s_env = policies.no_plaintext_secret_in_kubernetes_env
awaited = policies.kubernetes_rollout_awaited
latest = policies.no_latest_image
digest = policies.image_by_digest_outside_dev


def test_a_well_formed_deployment_passes_every_kubernetes_policy():
    for policy in (limits, privileged, k8s_env, awaited, latest, digest):
        assert check(policy, deployment()) == [], policy.name


@pytest.mark.parametrize("props", [
    service("LoadBalancer", selector={"cnpg.io/cluster": "avatar-db"}),
    service("NodePort", ports=[{"port": 5432}]),
    service("NodePort", ports=[{"port": 80, "targetPort": 5432}]),
    {"metadata": {"labels": {"app.kubernetes.io/component": "database"}},
     "spec": {"type": "LoadBalancer", "ports": [{"port": 6543}]}},
    service("ClusterIP", ports=[{"port": 5432}], externalIPs=["203.0.113.7"]),
])
def test_a_database_service_beyond_the_cluster_is_a_violation(props):
    violations = check(exposed, props, policies.K8S_SERVICE)
    assert len(violations) == 1 and "port-forward" in violations[0]


def test_a_database_cluster_ip_and_a_public_app_pass():
    assert check(exposed, service("ClusterIP", ports=[{"port": 5432}]), policies.K8S_SERVICE) == []
    assert check(exposed, service("LoadBalancer"), policies.K8S_SERVICE) == []  # the app may be public


def test_a_cluster_declaring_a_load_balancer_service_is_a_violation():
    cluster = {"spec": {"managed": {"services": {"additional": [
        {"selectorType": "rw", "serviceTemplate": {"metadata": {"name": "db-lb"},
                                                   "spec": {"type": "LoadBalancer"}}}]}}}}
    assert check(exposed, cluster, policies.CNPG_CLUSTER) != []


@pytest.mark.parametrize("props, says", [
    (deployment(container(resources={"requests": {"cpu": "1"}})), "no cpu and no memory limit"),
    (deployment(container(resources={"limits": {"cpu": "1"}})), "no memory limit"),
    (deployment(init=[container(name="deploy", resources={})]), "container deploy has no cpu"),
])
def test_a_container_without_limits_is_a_violation(props, says):
    violations = check(limits, props)
    assert len(violations) == 1 and says in violations[0]


def test_a_database_cluster_without_limits_is_a_violation():
    assert check(limits, {"spec": {"resources": {"requests": {"cpu": "1"}}}}, policies.CNPG_CLUSTER) != []
    assert check(limits, {"spec": {"resources": {"limits": {"cpu": "2", "memory": "2Gi"}}}},
                 policies.CNPG_CLUSTER) == []


@pytest.mark.parametrize("props, says", [
    (deployment(container(securityContext={"privileged": True})), "is privileged"),
    (deployment(container(securityContext={"allowPrivilegeEscalation": True})), "privilege escalation"),
    (deployment(hostNetwork=True), "Network namespace"),
    (deployment(hostPID=True), "PID namespace"),
    (deployment(init=[container(name="setup", securityContext={"privileged": True})]), "setup is privileged"),
])
def test_a_privileged_pod_is_a_violation(props, says):
    violations = check(privileged, props)
    assert len(violations) == 1 and says in violations[0]


def test_every_workload_kind_is_checked():
    bad = container(securityContext={"privileged": True})
    job = {"spec": {"template": {"spec": {"containers": [bad]}}}}
    cron = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [bad]}}}}}}
    pod = {"spec": {"containers": [bad]}}
    assert check(privileged, job, policies.K8S_JOB) != []
    assert check(privileged, cron, "kubernetes:batch/v1:CronJob") != []
    assert check(privileged, pod, "kubernetes:core/v1:Pod") != []


@pytest.mark.parametrize("entry", [
    {"name": "DATABASE_URL", "value": "postgresql://app:Xk2-generated@db:5432/a"},
    {"name": "APP_DB_PASSWORD", "value": "Xk2-generated"},
    {"name": "HUGGINGFACE_API_KEY", "value": "hf_abc"},
])
def test_a_secret_as_a_literal_env_value_is_a_violation(entry):
    violations = check(k8s_env, deployment(container(env=[entry])))
    assert len(violations) == 1 and "secretKeyRef" in violations[0]
    assert entry["value"] not in violations[0]


def test_a_secret_in_a_configmap_is_a_violation():
    assert check(k8s_env, {"data": {"url": "postgresql://a:b@h/d"}}, policies.K8S_CONFIGMAP) != []
    assert check(k8s_env, {"data": {"APP_ENV": "prod"}}, policies.K8S_CONFIGMAP) == []


def test_skip_await_on_the_gate_job_or_the_deployment_is_a_violation():
    skip = {policies.SKIP_AWAIT: "true"}
    assert check(awaited, deployment(annotations=skip)) != []
    assert check(awaited, {"metadata": {"annotations": skip}}, policies.K8S_JOB) != []
    assert check(awaited, {"metadata": {"annotations": {"pulumi.com/replaceUnready": "true"}}},
                 policies.K8S_JOB) == []


@pytest.mark.parametrize("image", ["avatar-creator", "avatar-creator:latest",
                                   "registry.example.com:5000/avatar-creator"])
def test_a_latest_or_untagged_image_is_a_violation(image):
    assert len(check(latest, deployment(container(image=image), profile="dev"))) == 1


def test_latest_is_refused_on_every_image_kind():
    assert check(latest, {"spec": {"imageName": "ghcr.io/cloudnative-pg/postgresql:latest"}},
                 policies.CNPG_CLUSTER) != []
    assert check(latest, {"name": "postgres:latest"}, "docker:index/remoteImage:RemoteImage") != []
    assert check(latest, {"name": "postgres:18.6-alpine"}, "docker:index/remoteImage:RemoteImage") == []
    assert check(latest, {"imageName": "avatar-creator:dev"}, "docker:index/image:Image") == []


@pytest.mark.parametrize("profile", ["staging", "prod", None])  # None: no label, the strict rule
def test_outside_dev_a_tagged_image_is_a_violation(profile):
    props = deployment(container(image="registry.example.com/avatar-creator:1.2.3"), profile=profile)
    violations = check(digest, props)
    assert len(violations) == 1 and "outside dev" in violations[0]
    tagged_digest = "registry.example.com/avatar-creator:1.2.3@sha256:" + "d4" * 32
    assert check(digest, deployment(container(image=tagged_digest), profile=profile)) == []


def test_in_dev_a_tagged_image_is_allowed():
    assert check(digest, deployment(container(image="registry.example.com/avatar-creator:dev"),
                                    profile="dev")) == []


def test_a_docker_app_container_outside_dev_must_run_a_digest():
    def app(profile, image):
        return {"image": "sha256:local-id", "labels": [
            {"label": "shipshape.role", "value": "app"},
            {"label": "shipshape.profile", "value": profile},
            {"label": "shipshape.image", "value": image}]}

    assert check(digest, app("prod", DIGEST), policies.CONTAINER) == []
    assert check(digest, app("prod", "build"), policies.CONTAINER) != []  # built, not promoted
    assert check(digest, app("staging", "registry.example.com/avatar:1.2"), policies.CONTAINER) != []
    assert check(digest, app("dev", "build"), policies.CONTAINER) == []
    assert check(digest, postgres(), policies.CONTAINER) == []  # the database image is pinned by tag
