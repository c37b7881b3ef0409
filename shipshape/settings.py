"""Environments and their settings: the context of every template and every operation.

An env is a name (what --env takes, what the database is stamped with) and a profile (which
of the built-in rule sets it runs with: local, dev, staging or prod). The four profiles are
envs of their own name; any other env is a Pulumi stack whose stack file, Pulumi.<name>.yaml,
declares its profile (`shipshape:profile: prod`), so `eu-prod` gets prod's safety defaults.

Precedence, lowest first: the profile's built-in defaults < Pulumi.<env>.yaml (the same
stack files the Pulumi program reads) < SHIPSHAPE_<SETTING> environment variables < flags.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from shipshape.errors import ConfigError
from shipshape.paths import project_root

# The profiles: the built-in rule sets, each also an env of its own name. Other env names
# are free (stack files); known_envs() lists them all.
PROFILES = ("local", "dev", "staging", "prod")
KNOWN_ENVS = PROFILES  # the name seed files and fleet files use for the profiles
# Profiles a stack file may declare: `local` runs the embedded server, never a stack.
STACK_PROFILES = tuple(p for p in PROFILES if p != "local")
PULUMI_NAMESPACE = "shipshape"
PROFILE_KEY = "profile"
PROFILE_VARIABLE = "SHIPSHAPE_PROFILE"  # a stack's profile where its stack file is not at hand


@dataclass(frozen=True)
class Environment:
    """Everything that differs between environments. It is also the templates' context."""

    name: str
    # The rule set (one of PROFILES) the env runs with; the name itself for the profiles.
    profile: str = ""
    # PostgreSQL interval strings, applied with SET LOCAL around every migration.
    lock_timeout: str = "5s"
    statement_timeout: str = "0"
    # How often a migration that hit lock_timeout is retried, and the first backoff.
    lock_retries: int = 3
    lock_retry_backoff: str = "500ms"
    # How long a deploy waits for another deploy's advisory lock before giving up (exit 4).
    migration_lock_wait: str = "60s"
    # Destructive statements (DROP TABLE, DROP COLUMN, ...) need a declaration in the
    # migration AND an env that allows them.
    allow_destructive: bool = True
    # Build indexes with CREATE INDEX CONCURRENTLY, outside a transaction.
    concurrent_indexes: bool = False
    app_role: str = "avatar_app"
    seed_sets: tuple[str, ...] = ("reference", "demo")
    # Name of the database the embedded server creates for `local`.
    database: str = "avatar_creator"
    connect_timeout: int = 5
    # When set, deploy's last gate checks <app_url>/health/ready.
    app_url: str = ""
    # What `deploy` applies when --phase is not given: all (expand, then contract in the
    # same deploy) or expand (contract later, after every replica runs the new release,
    # with `deploy --phase contract`). Empty: the profile's (_BUILTIN): all for local
    # (one process), expand for dev, staging and prod (and every stack of theirs).
    deploy_phase: str = ""
    # An app replica whose heartbeat (shipshape.app_instances.last_seen) is older than
    # this is taken for gone: it no longer holds a contract migration back.
    app_heartbeat_ttl: str = "30s"
    # The lock check (engine.locksafety): a statement that scans or rewrites a table with
    # more rows, or more MB (indexes and TOAST included), than these under a lock that
    # blocks the application is refused unless its migration says `-- shipshape:lock-ok`.
    # 0 turns a threshold off.
    lock_check_max_rows: int = 0
    lock_check_max_mb: int = 0
    # Rows per batch of a `-- shipshape:backfill` migration (its LIMIT says
    # {{ env.backfill_batch_size }}): each batch is its own short transaction.
    backfill_batch_size: int = 1000
    # The boundary of what the migrations own (engine.boundary): objects a DBA or another
    # tool manages, which verify ignores and runbooks never touch. Relations and roles
    # are globs on catalog names (`v_report*`, `reporting.*`).
    unmanaged_extensions: tuple[str, ...] = ()
    unmanaged_schemas: tuple[str, ...] = ()
    unmanaged_relations: tuple[str, ...] = ()
    unmanaged_roles: tuple[str, ...] = ()
    # Settings of the stack file that shipshape itself does not use (infra reads them).
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if not self.profile:
            object.__setattr__(self, "profile", self.name)

    @property
    def is_local(self) -> bool:
        return self.name == "local"

    @property
    def is_prod(self) -> bool:
        """prod's rules (a --reason for every change) hold for every env of the prod profile."""
        return self.profile == "prod"

    @property
    def default_phase(self) -> str:
        """What deploy applies without --phase: deploy_phase, else its profile's default
        (all for the local profile, one process; expand for the others)."""
        return self.deploy_phase or _BUILTIN.get(self.profile, {}).get("deploy_phase", "expand")

    def context(self) -> dict:
        """The Jinja context: every setting, plus the env name and its profile."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        for name in ("seed_sets", "unmanaged_extensions", "unmanaged_schemas",
                     "unmanaged_relations", "unmanaged_roles"):
            data[name] = list(getattr(self, name))
        return data


# What differs from the dataclass defaults when a stack file is absent. The stack files
# in the repository say the same; this keeps `local` working with no file at all.
_BUILTIN = {
    "local": {"deploy_phase": "all"},
    "dev": {"deploy_phase": "expand"},
    "staging": {"allow_destructive": False, "seed_sets": ("reference",),
                "deploy_phase": "expand",
                "lock_check_max_rows": 100_000, "lock_check_max_mb": 100},
    "prod": {
        "deploy_phase": "expand",
        "allow_destructive": False,
        "concurrent_indexes": True,
        "seed_sets": ("reference",),
        "lock_timeout": "3s",
        "statement_timeout": "15min",
        "lock_check_max_rows": 100_000,
        "lock_check_max_mb": 100,
    },
}

SETTINGS = tuple(f.name for f in fields(Environment) if f.name not in ("name", "profile", "extra"))


def stack_file(name: str, config_dir: Path | str | None = None) -> Path:
    return (Path(config_dir) if config_dir else project_root()) / f"Pulumi.{name}.yaml"


def known_envs(config_dir: Path | str | None = None) -> tuple[str, ...]:
    """The profiles, then every stack that has a stack file in config_dir, sorted."""
    directory = Path(config_dir) if config_dir else project_root()
    stacks = sorted(path.name[len("Pulumi."):-len(".yaml")]
                    for path in directory.glob("Pulumi.*.yaml"))
    return PROFILES + tuple(name for name in stacks if name not in PROFILES)


def load_environment(
    name: str,
    *,
    overrides: dict | None = None,
    config_dir: Path | str | None = None,
    environ: dict | None = None,
    profile: str | None = None,
) -> Environment:
    """Resolve an environment's settings with the documented precedence.

    name is a profile, or a stack whose file Pulumi.<name>.yaml (in config_dir, default the
    project root) declares one; ConfigError (exit 5) for anything else. A stack's settings
    start from its profile's built-in defaults, never from another stack's file.

    Where a stack's file is not at hand, its profile is given instead: by the caller that
    holds the stack's settings (profile=, the Pulumi program and its gate), or, in a
    process that has no stack files (the Kubernetes gate Job), by SHIPSHAPE_PROFILE.
    """
    environ = os.environ if environ is None else environ
    config_dir = Path(config_dir) if config_dir else project_root()
    if not _STACK_NAME.match(name):
        raise ConfigError(
            f"{name!r} is not an environment name: an env is a profile "
            f"({', '.join(PROFILES)}) or a Pulumi stack name (letters, digits, '-', '_', '.', "
            f"starting with a letter or digit). Known environments: "
            f"{', '.join(known_envs(config_dir))}. Pass one of them with --env.")
    path = stack_file(name, config_dir)
    given = profile or (None if name in PROFILES else environ.get(PROFILE_VARIABLE))
    if name not in PROFILES and not path.exists() and not given:
        raise ConfigError(
            f"Unknown environment {name!r}: it is no profile and has no stack file "
            f"({path.name} in {config_dir}). Known environments: "
            f"{', '.join(known_envs(config_dir))}. Pass one of them with --env, or create the "
            f"stack file, naming the profile whose rules it runs with: "
            f"`printf 'config:\\n  {PULUMI_NAMESPACE}:{PROFILE_KEY}: prod\\n' > {path.name}`.")
    stack_values, extra = _read_stack_file(path)
    profile = _profile(name, path, extra.pop(PROFILE_KEY, None), given)
    values: dict = dict(_BUILTIN[profile])
    values.update(stack_values)
    for setting in SETTINGS:
        env_value = environ.get(f"SHIPSHAPE_{setting.upper()}")
        if env_value is not None:
            values[setting] = env_value
    for key, value in (overrides or {}).items():
        if key not in SETTINGS:
            raise ConfigError(
                f"Unknown setting {key!r} in --set. Known settings: {', '.join(SETTINGS)}."
            )
        values[key] = value
    coerced = {key: _coerce(key, value) for key, value in values.items()}
    return Environment(name=name, profile=profile, extra=extra, **coerced)


# What Pulumi accepts as a stack name; nothing else reaches a path or a suggested command.
_STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _profile(name: str, path: Path, declared, given: str | None) -> str:
    """The profile env `name` runs with: what its stack file declares, else the one given,
    else its own name."""
    if declared is not None and given and str(declared) != given:
        raise ConfigError(
            f"{path} declares {PULUMI_NAMESPACE}:{PROFILE_KEY} {declared!r}, but the profile "
            f"{given!r} was given for the stack {name!r} (SHIPSHAPE_PROFILE or the Pulumi "
            f"program). One stack has one profile: unset SHIPSHAPE_PROFILE, or fix the file "
            f"with `pulumi config set --stack {name} {PULUMI_NAMESPACE}:{PROFILE_KEY} {given}`.")
    declared = declared if declared is not None else given
    if name == "local" and declared in (None, "local"):
        return name  # the embedded server's env; a stack file cannot make it another
    if declared is None:
        if name in PROFILES:
            return name
        raise ConfigError(
            f"{path}: the stack {name!r} does not say which profile it runs with, so shipshape "
            f"cannot tell which safety rules hold for it. Add the line "
            f"`{PULUMI_NAMESPACE}:{PROFILE_KEY}: <{'|'.join(STACK_PROFILES)}>` under `config:` "
            f"(or run `pulumi config set --stack {name} {PULUMI_NAMESPACE}:{PROFILE_KEY} prod`).")
    if declared not in STACK_PROFILES:
        hint = (" `local` is the embedded server of `make up`, never a stack."
                if declared == "local" else "")
        raise ConfigError(
            f"{path}: {PULUMI_NAMESPACE}:{PROFILE_KEY} is {declared!r}; it must be one of "
            f"{', '.join(STACK_PROFILES)}.{hint} Fix it with `pulumi config set --stack {name} "
            f"{PULUMI_NAMESPACE}:{PROFILE_KEY} <{'|'.join(STACK_PROFILES)}>`.")
    return str(declared)


def parse_overrides(pairs) -> dict:
    """Turn ['lock_timeout=2s', ...] from repeated --set flags into a dict."""
    result = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}.")
        result[key.strip()] = value.strip()
    return result


def _read_stack_file(path: Path) -> tuple[dict, dict]:
    if not path.exists():
        return {}, {}
    import yaml

    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: 'config' must be a mapping of '<namespace>:<key>' to values.")
    settings, extra = {}, {}
    for full_key, value in config.items():
        namespace, _, key = str(full_key).partition(":")
        if namespace != PULUMI_NAMESPACE:
            continue
        if isinstance(value, dict) and "secure" in value:
            continue  # secrets belong to Pulumi; shipshape never reads them from here
        (settings if key in SETTINGS else extra)[key] = value
    return settings, extra


_DEPLOY_PHASES = ("", "all", "expand", "contract")
_BOOL_WORDS = {"true": True, "yes": True, "1": True, "on": True,
               "false": False, "no": False, "0": False, "off": False}


def _coerce(key: str, value):
    kind = {f.name: f.type for f in fields(Environment)}[key]
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            return _BOOL_WORDS[str(value).strip().lower()]
        if kind == "int":
            return int(value)
        if kind == "tuple[str, ...]":
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            return tuple(str(v) for v in value)
        if kind == "str":
            if key.endswith(("timeout", "wait", "backoff", "ttl")):
                parse_duration(str(value))
            if key == "deploy_phase" and str(value) not in _DEPLOY_PHASES:
                raise ValueError(value)
            return str(value)
    except (KeyError, ValueError, TypeError):
        pass
    else:
        return value
    raise ConfigError(f"Setting {key!r} has an invalid value {value!r} (expected {kind}).")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, None: 0.001}


def parse_duration(text: str) -> float:
    """A PostgreSQL-style duration ('500ms', '5s', '15min', '0') in seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    # PostgreSQL reads a bare number of a timeout setting as milliseconds.
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def with_settings(env: Environment, **changes) -> Environment:
    return dataclasses.replace(env, **changes)
