"""Environments and their settings: the context of every template and every operation.

Precedence, lowest first: built-in defaults < Pulumi.<env>.yaml (the same stack files
the Pulumi program reads) < SHIPSHAPE_<SETTING> environment variables < task flags.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from shipshape.errors import ConfigError
from shipshape.paths import project_root

KNOWN_ENVS = ("local", "dev", "staging", "prod")
PULUMI_NAMESPACE = "shipshape"


@dataclass(frozen=True)
class Environment:
    """Everything that differs between environments. It is also the templates' context."""

    name: str
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
    # The boundary of what the migrations own (engine.boundary): objects a DBA or another
    # tool manages, which verify ignores and runbooks never touch. Relations and roles
    # are globs on catalog names (`v_report*`, `reporting.*`).
    unmanaged_extensions: tuple[str, ...] = ()
    unmanaged_schemas: tuple[str, ...] = ()
    unmanaged_relations: tuple[str, ...] = ()
    unmanaged_roles: tuple[str, ...] = ()
    # Settings of the stack file that shipshape itself does not use (infra reads them).
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_local(self) -> bool:
        return self.name == "local"

    def context(self) -> dict:
        """The Jinja context: every setting, plus the env name."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        for name in ("seed_sets", "unmanaged_extensions", "unmanaged_schemas",
                     "unmanaged_relations", "unmanaged_roles"):
            data[name] = list(getattr(self, name))
        return data


# What differs from the dataclass defaults when a stack file is absent. The stack files
# in the repository say the same; this keeps `local` working with no file at all.
_BUILTIN = {
    "local": {},
    "dev": {},
    "staging": {"allow_destructive": False, "seed_sets": ("reference",)},
    "prod": {
        "allow_destructive": False,
        "concurrent_indexes": True,
        "seed_sets": ("reference",),
        "lock_timeout": "3s",
        "statement_timeout": "15min",
    },
}

SETTINGS = tuple(f.name for f in fields(Environment) if f.name not in ("name", "extra"))


def load_environment(
    name: str,
    *,
    overrides: dict | None = None,
    config_dir: Path | str | None = None,
    environ: dict | None = None,
) -> Environment:
    """Resolve an environment's settings with the documented precedence."""
    if name not in KNOWN_ENVS:
        raise ConfigError(
            f"Unknown environment {name!r}. Known environments: {', '.join(KNOWN_ENVS)}. "
            f"Pass one of them with --env."
        )
    environ = os.environ if environ is None else environ
    config_dir = Path(config_dir) if config_dir else project_root()
    values: dict = dict(_BUILTIN[name])
    extra: dict = {}
    stack_values, extra = _read_stack_file(config_dir / f"Pulumi.{name}.yaml")
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
    return Environment(name=name, extra=extra, **coerced)


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
            if key.endswith("timeout") or key.endswith("wait") or key.endswith("backoff"):
                parse_duration(str(value))
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
