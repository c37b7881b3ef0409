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


def test_both_policies_are_mandatory():
    assert {p.name for p in policies.POLICIES} == {"database-port-loopback-only",
                                                   "no-plaintext-secret-in-container-env"}
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
