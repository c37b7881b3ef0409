"""shipshape's policies for its stacks, as plain validate functions (unit-tested without
the Pulumi CLI in tests/infra/test_policy.py); __main__.py only assembles the pack.

1. database-port-loopback-only: a PostgreSQL container publishes its port on loopback
   only (or on an address the pack's config explicitly allows), never on every interface:
   no unset `ip` (Docker's default is 0.0.0.0), no publish_all_ports, no host networking.
2. no-plaintext-secret-in-container-env: a container whose env holds a secret (a password,
   key or token variable, or a URL with a password) must keep `envs` secret.

On 2: Pulumi hands policies every value decrypted, with no mark of which were secrets
(pulumi/pulumi-policy#241, open), so "was this value a secret?" cannot be asked from a
policy. What can be checked, and is required here, is the resource option
`additional_secret_outputs` naming `envs`: with it the env is stored encrypted in the
state and masked in every CLI output, however the program built the value. A value that
is a well-known default ("postgres", "changeme", ...) is refused as well: that is a
secret typed into code, not one taken from `pulumi config set --secret`.
"""

from __future__ import annotations

import re
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationPolicy

CONTAINER = "docker:index/container:Container"
POSTGRES_PORT = 5432
LOOPBACK = ("127.0.0.1", "::1", "localhost")
SENSITIVE_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@\s]*:[^@\s]+@", re.IGNORECASE)
GUESSABLE = {"", "postgres", "password", "passw0rd", "changeme", "change-me", "secret",
             "admin", "root", "example", "test", "123456", "avatar_app"}


def _get(props: Any, camel: str, snake: str | None = None, default=None):
    """A property by its engine (camelCase) or Python (snake_case) name."""
    if props is None:
        return default
    for key in (camel, snake):
        if key and key in props and props[key] is not None:
            return props[key]
    return default


def is_database(props: Any) -> bool:
    labels = _get(props, "labels", default=[]) or []
    if any(_get(label, "label") == "shipshape.role" and _get(label, "value") == "database"
           for label in labels):
        return True
    if "postgres" in str(_get(props, "image", default="")).lower():
        return True
    return any(_get(port, "internal") == POSTGRES_PORT for port in _get(props, "ports", default=[]) or [])


def public_database_ports(props: Any, allowed=LOOPBACK) -> list[str]:
    """Why this database container is reachable beyond the allowed addresses (empty: it is not)."""
    if not is_database(props):
        return []
    problems = []
    if _get(props, "networkMode", "network_mode") == "host":
        problems.append("uses host networking, so PostgreSQL listens on every host interface")
    if _get(props, "publishAllPorts", "publish_all_ports"):
        problems.append("sets publish_all_ports, which publishes 5432 on 0.0.0.0")
    for port in _get(props, "ports", default=[]) or []:
        ip = _get(port, "ip") or "0.0.0.0"
        if ip not in allowed:
            where = "every interface" if ip in ("0.0.0.0", "::") else ip
            problems.append(f"publishes container port {_get(port, 'internal')} as host port "
                            f"{_get(port, 'external', default='(random)')} on {where}")
    return problems


def validate_database_port(args, report_violation) -> None:
    if args.resource_type != CONTAINER:
        return
    allowed = tuple(args.get_config().get("allowedAddresses") or LOOPBACK)
    for problem in public_database_ports(args.props, allowed):
        report_violation(
            f"Database container {args.name} {problem}. Publish it on 127.0.0.1 only "
            f"(shipshape:db_bind_address), or allow a private address explicitly in this "
            f"policy's allowedAddresses.")


def sensitive_env(envs) -> list[tuple[str, str]]:
    """(name, value) of each env entry that holds a secret."""
    found = []
    for entry in envs or []:
        name, _, value = str(entry).partition("=")
        if SENSITIVE_NAME.search(name) or URL_WITH_PASSWORD.match(value):
            found.append((name, value))
    return found


def plaintext_secret_problems(props: Any, additional_secret_outputs) -> list[str]:
    envs = _get(props, "envs", default=[]) or []
    found = sensitive_env(envs)
    if not found:
        return []
    names = ", ".join(sorted({name for name, _ in found}))
    problems = []
    if "envs" not in set(additional_secret_outputs or ()):
        problems.append(
            f"sets {names} in envs, but envs is not kept secret: build the values from "
            f"config secrets (`pulumi config set --secret`, cfg.require_secret) and add "
            f"additional_secret_outputs=['envs'] to the container's options")
    for name, value in found:
        secret = _url_password(value) if URL_WITH_PASSWORD.match(value) else value
        if secret.strip().lower() in GUESSABLE:
            problems.append(f"sets {name} to a well-known default value: a secret written "
                            f"into code; set a generated one with `pulumi config set --secret`")
    return problems


def _url_password(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]


def validate_container_secrets(args, report_violation) -> None:
    if args.resource_type != CONTAINER:
        return
    for problem in plaintext_secret_problems(args.props, args.opts.additional_secret_outputs):
        report_violation(f"Container {args.name} {problem}.")


database_port_loopback_only = ResourceValidationPolicy(
    name="database-port-loopback-only",
    description="A PostgreSQL container's port is published on loopback only.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=validate_database_port,
    config_schema=PolicyConfigSchema(properties={
        "allowedAddresses": {"type": "array", "items": {"type": "string"},
                             "default": list(LOOPBACK)},
    }),
)

no_plaintext_secret_in_container_env = ResourceValidationPolicy(
    name="no-plaintext-secret-in-container-env",
    description="A container's env that holds a secret is itself kept secret.",
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=validate_container_secrets,
)

POLICIES = [database_port_loopback_only, no_plaintext_secret_in_container_env]
