"""shipshape's policies for its stacks, as plain validate functions (unit-tested without
the Pulumi CLI in tests/infra/test_policy.py); __main__.py only assembles the pack.

Docker platform:
1. database-port-loopback-only: a PostgreSQL container publishes its port on loopback
   only (or on an address the pack's config explicitly allows), never on every interface:
   no unset `ip` (Docker's default is 0.0.0.0), no publish_all_ports, no host networking.
2. no-plaintext-secret-in-container-env: a container whose env holds a secret (a password,
   key or token variable, or a URL with a password) must keep `envs` secret.

Kubernetes platform:
3. kubernetes-database-not-exposed: no LoadBalancer or NodePort Service (nor externalIPs)
   in front of the database: a Service selecting or labelled as the database, selecting a
   CloudNativePG cluster, or serving 5432; nor one a Cluster declares as a managed service.
4. kubernetes-resource-limits: every container of every pod (init containers too) and a
   CloudNativePG Cluster's instances have CPU and memory limits.
5. kubernetes-no-privileged-pod: no privileged container, no allowPrivilegeEscalation,
   no host network, PID or IPC namespace.
6. no-plaintext-secret-in-kubernetes-env: a secret-looking env var (or a URL with a
   password) is never a literal `value` in a manifest: valueFrom.secretKeyRef.
7. kubernetes-rollout-awaited: no `pulumi.com/skipAwait` on a Job or a Deployment: the
   app's ordering after the migration gate is pulumi-kubernetes awaiting the Job.

Both platforms:
8. no-latest-image: an image is a version tag or a digest, never `latest` or no tag.
9. image-by-digest-outside-dev: outside the dev profile, an app or gate image is a digest
   (repo@sha256:...): what dev built and tested is what runs. The profile is read from the
   resource's label (shipshape.io/profile on Kubernetes, shipshape.profile on a Docker
   container); a resource that says none is held to the stricter rule.

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


def mandatory(name: str, description: str, validate, **options) -> ResourceValidationPolicy:
    """Every rule here is mandatory: a violation fails `pulumi preview` and `pulumi up`."""
    return ResourceValidationPolicy(name=name, description=description, validate=validate,
                                    enforcement_level=EnforcementLevel.MANDATORY, **options)


database_port_loopback_only = mandatory(
    "database-port-loopback-only",
    "A PostgreSQL container's port is published on loopback only.",
    validate_database_port,
    config_schema=PolicyConfigSchema(properties={
        "allowedAddresses": {"type": "array", "items": {"type": "string"},
                             "default": list(LOOPBACK)},
    }),
)

no_plaintext_secret_in_container_env = mandatory(
    "no-plaintext-secret-in-container-env",
    "A container's env that holds a secret is itself kept secret.",
    validate_container_secrets)


# --- Kubernetes ------------------------------------------------------------------------

K8S_SERVICE = "kubernetes:core/v1:Service"
K8S_CONFIGMAP = "kubernetes:core/v1:ConfigMap"
K8S_JOB = "kubernetes:batch/v1:Job"
K8S_DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CNPG_CLUSTER = "kubernetes:postgresql.cnpg.io/v1:Cluster"
K8S_POD_TEMPLATE = {  # workload type -> path from its props to its pod spec
    "kubernetes:core/v1:Pod": ("spec",),
    K8S_DEPLOYMENT: ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    K8S_JOB: ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
EXPOSED_TYPES = ("LoadBalancer", "NodePort")
DATABASE_COMPONENTS = ("database", "postgresql", "postgres", "db")
PROFILE_LABEL = "shipshape.io/profile"
DOCKER_PROFILE_LABEL = "shipshape.profile"
DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
SKIP_AWAIT = "pulumi.com/skipAwait"


def _path(props: Any, *keys, default=None):
    for key in keys:
        if not isinstance(props, dict) or props.get(key) is None:
            return default
        props = props[key]
    return props


def pod_spec(resource_type: str, props: Any) -> dict | None:
    path = K8S_POD_TEMPLATE.get(resource_type)
    return _path(props, *path) if path else None


def pod_containers(pod: dict | None) -> list[dict]:
    pod = pod or {}
    return [c for key in ("initContainers", "containers", "ephemeralContainers")
            for c in (pod.get(key) or []) if isinstance(c, dict)]


def exposed_database_service(resource_type: str, props: Any) -> list[str]:
    """Why this resource puts the database in reach from outside the cluster."""
    problems = []
    if resource_type == K8S_SERVICE:
        spec = _path(props, "spec", default={}) or {}
        selector = spec.get("selector") or {}
        labels = _path(props, "metadata", "labels", default={}) or {}
        ports = spec.get("ports") or []
        is_db = (any(k.startswith("cnpg.io/") for k in selector)
                 or any(d.get("app.kubernetes.io/component") in DATABASE_COMPONENTS for d in (selector, labels))
                 or any(POSTGRES_PORT in (_get(p, "port"), _get(p, "targetPort")) for p in ports))
        if is_db and spec.get("type") in EXPOSED_TYPES:
            problems.append(f"is a {spec['type']} Service in front of the database")
        if is_db and spec.get("externalIPs"):
            problems.append("publishes the database on externalIPs")
    elif resource_type == CNPG_CLUSTER:
        for extra in _path(props, "spec", "managed", "services", "additional", default=[]) or []:
            kind = _path(extra, "serviceTemplate", "spec", "type")
            if kind in EXPOSED_TYPES:
                problems.append(f"declares a {kind} managed service for the database")
    return problems


def validate_database_not_exposed(args, report_violation) -> None:
    for problem in exposed_database_service(args.resource_type, args.props):
        report_violation(
            f"{args.resource_type.split(':')[-1]} {args.name} {problem}. PostgreSQL stays "
            f"ClusterIP: the app and the migration gate reach it inside the cluster; reach it "
            f"from outside with `kubectl port-forward`.")


def missing_limits(resource_type: str, props: Any) -> list[str]:
    """The containers (or the Cluster) without a CPU or memory limit."""
    if resource_type == CNPG_CLUSTER:
        limits = _path(props, "spec", "resources", "limits", default={}) or {}
        missing = [r for r in ("cpu", "memory") if not limits.get(r)]
        return [f"its instances have no {' and no '.join(missing)} limit"] if missing else []
    problems = []
    for container in pod_containers(pod_spec(resource_type, props)):
        limits = _path(container, "resources", "limits", default={}) or {}
        missing = [r for r in ("cpu", "memory") if not limits.get(r)]
        if missing:
            problems.append(f"container {container.get('name')} has no {' and no '.join(missing)} limit")
    return problems


def validate_resource_limits(args, report_violation) -> None:
    for problem in missing_limits(args.resource_type, args.props):
        report_violation(f"{args.resource_type.split(':')[-1]} {args.name}: {problem}. Set "
                         f"resources.limits (and requests): one pod must not starve its node.")


def privileged(resource_type: str, props: Any) -> list[str]:
    pod = pod_spec(resource_type, props)
    if pod is None:
        return []
    problems = [f"uses the host's {ns[4:]} namespace" for ns in ("hostNetwork", "hostPID", "hostIPC")
                if pod.get(ns)]
    for container in pod_containers(pod):
        security = container.get("securityContext") or {}
        if security.get("privileged"):
            problems.append(f"container {container.get('name')} is privileged")
        if security.get("allowPrivilegeEscalation"):
            problems.append(f"container {container.get('name')} allows privilege escalation")
    return problems


def validate_no_privileged_pod(args, report_violation) -> None:
    for problem in privileged(args.resource_type, args.props):
        report_violation(f"{args.resource_type.split(':')[-1]} {args.name} {problem}. The "
                         f"stack's pods run unprivileged (securityContext: privileged false, "
                         f"allowPrivilegeEscalation false, no host namespaces).")


def plaintext_env_problems(resource_type: str, props: Any) -> list[str]:
    problems = []
    for container in pod_containers(pod_spec(resource_type, props)):
        for entry in container.get("env") or []:
            name, value = str(entry.get("name") or ""), entry.get("value")
            if value in (None, ""):
                continue
            if SENSITIVE_NAME.search(name) or URL_WITH_PASSWORD.match(str(value)):
                problems.append(f"container {container.get('name')} sets {name} as a literal value")
    if resource_type == K8S_CONFIGMAP:
        for key, value in (_path(props, "data", default={}) or {}).items():
            if SENSITIVE_NAME.search(str(key)) or URL_WITH_PASSWORD.match(str(value)):
                problems.append(f"holds {key}, a secret, in a ConfigMap")
    return problems


def validate_kubernetes_env_secrets(args, report_violation) -> None:
    for problem in plaintext_env_problems(args.resource_type, args.props):
        report_violation(f"{args.resource_type.split(':')[-1]} {args.name} {problem}: a manifest "
                         f"is plain text wherever it goes. Put it in a Secret made from a Pulumi "
                         f"secret and use valueFrom.secretKeyRef.")


def validate_rollout_awaited(args, report_violation) -> None:
    if args.resource_type not in (K8S_JOB, K8S_DEPLOYMENT):
        return
    annotations = _path(args.props, "metadata", "annotations", default={}) or {}
    if str(annotations.get(SKIP_AWAIT, "")).lower() == "true":
        report_violation(
            f"{args.resource_type.split(':')[-1]} {args.name} sets {SKIP_AWAIT}: Pulumi would "
            f"not wait for it, so the app could start before the migration gate passed (or a "
            f"failed gate or rollout would not fail the update). Remove the annotation.")


# --- images, both platforms ----------------------------------------------------------

def images_of(resource_type: str, props: Any) -> list[str]:
    """Every image reference a resource runs or pulls."""
    if resource_type == CNPG_CLUSTER:
        return [i for i in [_path(props, "spec", "imageName")] if i]
    if resource_type == "docker:index/remoteImage:RemoteImage":
        return [i for i in [_get(props, "name")] if i]
    if resource_type == "docker:index/image:Image":
        return [i for i in [_get(props, "imageName", "image_name")] if i]
    return [str(c.get("image")) for c in pod_containers(pod_spec(resource_type, props)) if c.get("image")]


def floating_tag(image: str) -> bool:
    """`latest`, or no tag and no digest (which means latest)."""
    if "@sha256:" in image:
        return False
    last = image.rsplit("/", 1)[-1]
    return ":" not in last or last.rsplit(":", 1)[1] == "latest"


def validate_no_latest_image(args, report_violation) -> None:
    for image in images_of(args.resource_type, args.props):
        if floating_tag(image):
            report_violation(f"{args.resource_type.split(':')[-1]} {args.name} runs {image}: "
                             f"`latest` (or no tag) is a different image tomorrow. Pin a version "
                             f"tag, or a digest (repo@sha256:...).")


def non_digest_images(resource_type: str, props: Any) -> list[str]:
    """Outside the dev profile: the app and gate images that are not digests."""
    if resource_type == CONTAINER:
        labels = {_get(l, "label"): _get(l, "value") for l in (_get(props, "labels", default=[]) or [])}
        if labels.get("shipshape.role") != "app" or labels.get(DOCKER_PROFILE_LABEL) == "dev":
            return []
        # The container's `image` is the engine's local image id; the reference it was
        # pulled by is in the shipshape.image label (infra/components/docker/app.py).
        image = labels.get("shipshape.image") or ""
        return [] if DIGEST_REF.match(_strip_tag(image)) else [image or "(no shipshape.image label)"]
    pod = pod_spec(resource_type, props)
    if pod is None:
        return []
    labels = _path(props, "metadata", "labels", default={}) or {}
    if labels.get(PROFILE_LABEL) == "dev":
        return []
    return [str(c.get("image")) for c in pod_containers(pod)
            if not DIGEST_REF.match(_strip_tag(str(c.get("image") or "")))]


def _strip_tag(image: str) -> str:
    """repo:tag@sha256:x -> repo@sha256:x (a tag beside a digest changes nothing)."""
    if "@" not in image:
        return image
    name, digest = image.split("@", 1)
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        last[-1] = last[-1].rsplit(":", 1)[0]
    return "/".join(last) + "@" + digest


def validate_image_by_digest(args, report_violation) -> None:
    for image in non_digest_images(args.resource_type, args.props):
        report_violation(
            f"{args.resource_type.split(':')[-1]} {args.name} runs {image} outside dev: staging "
            f"and prod deploy the digest dev built (shipshape:app_image / gate_image = "
            f"repo@sha256:...), never a tag or a build of their own.")


kubernetes_database_not_exposed = mandatory(
    "kubernetes-database-not-exposed",
    "No LoadBalancer or NodePort Service in front of PostgreSQL.",
    validate_database_not_exposed)
kubernetes_resource_limits = mandatory(
    "kubernetes-resource-limits",
    "Every container, and the database's instances, has CPU and memory limits.",
    validate_resource_limits)
kubernetes_no_privileged_pod = mandatory(
    "kubernetes-no-privileged-pod",
    "No privileged container, privilege escalation or host namespace.",
    validate_no_privileged_pod)
no_plaintext_secret_in_kubernetes_env = mandatory(
    "no-plaintext-secret-in-kubernetes-env",
    "A secret reaches a pod through a Secret, never as a literal in a manifest.",
    validate_kubernetes_env_secrets)
kubernetes_rollout_awaited = mandatory(
    "kubernetes-rollout-awaited",
    "The gate Job and the app Deployment are awaited (no pulumi.com/skipAwait).",
    validate_rollout_awaited)
no_latest_image = mandatory(
    "no-latest-image",
    "No image by `latest` or without a tag.",
    validate_no_latest_image)
image_by_digest_outside_dev = mandatory(
    "image-by-digest-outside-dev",
    "Outside dev, the app and gate images are digests (repo@sha256:...).",
    validate_image_by_digest)

POLICIES = [database_port_loopback_only, no_plaintext_secret_in_container_env,
            kubernetes_database_not_exposed, kubernetes_resource_limits,
            kubernetes_no_privileged_pod, no_plaintext_secret_in_kubernetes_env,
            kubernetes_rollout_awaited, no_latest_image, image_by_digest_outside_dev]
