"""The stack's configuration: the ONLY reader of pulumi.Config in the program.

Everything comes from the `shipshape:` namespace of Pulumi.<stack>.yaml, the same file
shipshape's tasks read (one source, no copy). The stack name is the env name (dev,
staging, prod). Required values missing, or a secret written in plain text, stop the
program before any resource is registered, with a message that says which key and the
command that sets it.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pulumi

from shipshape.settings import KNOWN_ENVS, SETTINGS, Environment, load_environment

NAMESPACE = "shipshape"
ROOT = Path(__file__).resolve().parent.parent

# Secrets: set with `pulumi config set --secret shipshape:<key> ...`, never in plain text.
SECRET_KEYS = ("db_superuser_password", "app_db_password", "huggingface_api_key")
REQUIRED = ("postgres_image", "db_port", "db_superuser_password", "app_db_password")
PROVIDERS = ("placeholder", "huggingface")
LOOPBACK = ("127.0.0.1", "::1")


class StackConfigError(pulumi.RunError):
    """A configuration value is missing or invalid; the message names the key and the fix.

    A RunError: Pulumi shows the message alone, without a Python traceback."""


@dataclass(frozen=True)
class StackConfig:
    env: Environment                 # shipshape's settings for this stack (the gate's env)
    project_dir: Path
    sql_dir: Path
    # database
    postgres_image: str
    db_port: int                     # host port the database is published on
    db_bind_address: str             # host address it is published on (loopback by default)
    db_host: str                     # where the machine running Pulumi reaches that port
    db_superuser: str
    db_superuser_password: pulumi.Output  # secret
    protect_data: bool               # protect the data volume from `pulumi destroy`
    # app
    app_image: str                   # "" builds app/Dockerfile; else this image is pulled
    app_port: int                    # first host port; replica i listens on app_port + i
    app_bind_address: str
    app_replicas: int
    app_db_password: pulumi.Output   # secret: the app role's password
    generation_provider: str
    huggingface_api_key: pulumi.Output | None  # secret

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def database(self) -> str:
        return self.env.database

    @property
    def app_role(self) -> str:
        return self.env.app_role


def load(stack: str | None = None) -> StackConfig:
    """Read and validate the stack's configuration."""
    stack = stack or pulumi.get_stack()
    if stack not in KNOWN_ENVS or stack == "local":
        raise StackConfigError(
            f"Stack {stack!r} is not a shipshape environment. The stack name is the env: "
            f"one of {', '.join(e for e in KNOWN_ENVS if e != 'local')} (each has its "
            f"Pulumi.<env>.yaml). `local` runs without Pulumi: `make up`.")
    cfg = pulumi.Config(NAMESPACE)
    problems = [_missing(stack, key) for key in REQUIRED if cfg.get(key) in (None, "")]
    problems += [_plaintext(stack, key) for key in SECRET_KEYS
                 if cfg.get(key) not in (None, "") and not _is_secret(key)]
    provider = cfg.get("generation_provider") or ("huggingface" if stack == "prod" else "placeholder")
    if provider not in PROVIDERS:
        problems.append(f"shipshape:generation_provider is {provider!r}; it must be one of "
                        f"{', '.join(PROVIDERS)}.")
    elif provider == "huggingface" and not cfg.get("huggingface_api_key"):
        problems.append(_missing(stack, "huggingface_api_key",
                                 why="generation_provider is huggingface"))
    db_bind = cfg.get("db_bind_address") or "127.0.0.1"
    app_bind = cfg.get("app_bind_address") or "127.0.0.1"
    for key, value in (("db_bind_address", db_bind), ("app_bind_address", app_bind)):
        try:
            ipaddress.ip_address(value)
        except ValueError:
            problems.append(f"shipshape:{key} is {value!r}, not an IP address "
                            f"(127.0.0.1 keeps it on this machine).")
    db_port = _int(cfg, "db_port", None, problems, low=1, high=65535)
    app_port = _int(cfg, "app_port", 8000, problems, low=1, high=65535)
    replicas = _int(cfg, "app_replicas", 1, problems, low=1, high=16)
    protect = (cfg.get("protect_data") or "false").strip().lower() in ("true", "yes", "1", "on")
    if problems:
        raise StackConfigError(
            f"The configuration of stack {stack} (Pulumi.{stack}.yaml) is incomplete or "
            f"invalid:\n" + "\n".join(f"  - {p}" for p in problems))
    return StackConfig(
        env=_environment(stack, cfg),
        project_dir=ROOT,
        sql_dir=Path(cfg.get("sql_dir") or ROOT / "sql").resolve(),
        postgres_image=cfg.require("postgres_image"),
        db_port=db_port,
        db_bind_address=db_bind,
        db_host=cfg.get("db_host") or ("127.0.0.1" if db_bind in ("0.0.0.0", "::") else db_bind),
        db_superuser=cfg.get("db_superuser") or "postgres",
        db_superuser_password=cfg.require_secret("db_superuser_password"),
        protect_data=protect,
        app_image=cfg.get("app_image") or "",
        app_port=app_port,
        app_bind_address=app_bind,
        app_replicas=replicas,
        app_db_password=cfg.require_secret("app_db_password"),
        generation_provider=provider,
        huggingface_api_key=cfg.get_secret("huggingface_api_key"),
    )


def _environment(stack: str, cfg: pulumi.Config) -> Environment:
    """shipshape's settings from the stack config; SHIPSHAPE_<SETTING> still wins, as in the tasks."""
    overrides = {}
    for setting in SETTINGS:
        value = cfg.get(setting)
        if value is None or f"SHIPSHAPE_{setting.upper()}" in os.environ:
            continue
        if value.startswith("["):
            value = json.loads(value)
        overrides[setting] = value
    return load_environment(stack, overrides=overrides, config_dir=ROOT)


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
