"""Configuration, from environment variables only (twelve-factor; no files, no flags).

DATABASE_URL         required; postgresql://USER:<password>@HOST:PORT/DB (the password is never logged)
APP_ENV              local | dev | staging | prod (default local); names the deploy command
                     printed by /health/ready
GENERATION_PROVIDER  placeholder | huggingface (default: placeholder, huggingface in prod)
HUGGINGFACE_API_KEY  required when the provider is huggingface
HUGGINGFACE_API_URL  inference endpoint prefix (default: Hugging Face's hf-inference router)
APP_HOST, APP_PORT   where `python -m app` listens (default 0.0.0.0:8000; PORT also works)
APP_DB_POOL_MIN, APP_DB_POOL_MAX        connection pool size (default 1..10)
APP_DB_POOL_TIMEOUT  seconds a request waits for a connection before 503 (default 10)
APP_WORKER_ENABLED, APP_WORKER_CONCURRENCY, APP_WORKER_POLL_INTERVAL   generation worker
APP_EXPECTED_MODELS  enabled models /health/models expects (default 4)
APP_SCHEMA_VERSION   the release this process runs as: the schema version it was built for
                     (default app.SCHEMA_VERSION; set only to run a build as another release)
APP_INSTANCE_ID      this replica's name in shipshape.app_instances (default host-pid-random)
APP_HEARTBEAT_INTERVAL  seconds between two heartbeats in shipshape.app_instances (default 5)
APP_LOG_LEVEL        DEBUG | INFO | WARNING | ERROR (default INFO)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from app import EXPECTED_MODEL_COUNT, SCHEMA_VERSION

ENVS = ("local", "dev", "staging", "prod")
PROVIDERS = ("placeholder", "huggingface")
DEFAULT_HF_URL = "https://router.huggingface.co/hf-inference/models"


class ConfigError(Exception):
    """A missing or invalid environment variable; the message names it."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    app_env: str = "local"
    generation_provider: str = "placeholder"
    huggingface_api_key: str | None = None
    huggingface_api_url: str = DEFAULT_HF_URL
    host: str = "0.0.0.0"
    port: int = 8000
    pool_min: int = 1
    pool_max: int = 10
    pool_timeout: float = 10.0
    worker_enabled: bool = True
    worker_concurrency: int = 2
    worker_poll_interval: float = 1.0
    expected_models: int = EXPECTED_MODEL_COUNT
    log_level: str = "INFO"
    release: int = SCHEMA_VERSION
    instance_id: str = ""
    heartbeat_interval: float = 5.0

    def __repr__(self) -> str:  # never show the DSN's password or the API key
        return (
            f"Settings(app_env={self.app_env!r}, provider={self.generation_provider!r}, "
            f"host={self.host!r}, port={self.port})"
        )

    @property
    def deploy_command(self) -> str:
        """For what the app can name for sure: migrations pending on a database that has
        its history (the version it reads is behind)."""
        return f"invoke deploy --env {self.app_env}"

    @property
    def doctor_command(self) -> str:
        """For anything the app cannot name (an object missing: dropped by hand, or never
        migrated; no history at all): doctor tells which runbook fixes it. Sending people
        to deploy instead went in a circle when deploy could not fix it (issue 11)."""
        return f"invoke doctor --env {self.app_env}"

    @classmethod
    def from_env(cls, environ: dict | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() != "" else default

        database_url = get("DATABASE_URL")
        if not database_url:
            raise ConfigError(
                "DATABASE_URL is not set: the app needs the database's URL, "
                "e.g. postgresql://avatar_app:...@host:5432/avatar_creator."
            )
        app_env = get("APP_ENV", "local")
        if app_env not in ENVS:
            raise ConfigError(f"APP_ENV={app_env!r} is not one of {', '.join(ENVS)}.")
        provider = get("GENERATION_PROVIDER", "huggingface" if app_env == "prod" else "placeholder")
        if provider not in PROVIDERS:
            raise ConfigError(
                f"GENERATION_PROVIDER={provider!r} is not one of {', '.join(PROVIDERS)}."
            )
        key = get("HUGGINGFACE_API_KEY")
        if provider == "huggingface" and not key:
            raise ConfigError(
                "GENERATION_PROVIDER=huggingface needs HUGGINGFACE_API_KEY "
                "(or set GENERATION_PROVIDER=placeholder outside prod)."
            )
        log_level = get("APP_LOG_LEVEL", "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"APP_LOG_LEVEL={log_level!r} is not DEBUG, INFO, WARNING or ERROR.")
        settings = cls(
            database_url=database_url,
            app_env=app_env,
            generation_provider=provider,
            huggingface_api_key=key,
            huggingface_api_url=get("HUGGINGFACE_API_URL", DEFAULT_HF_URL).rstrip("/"),
            host=get("APP_HOST", "0.0.0.0"),
            port=_int(get, "APP_PORT", int(get("PORT", "8000") or 8000), 1, 65535),
            pool_min=_int(get, "APP_DB_POOL_MIN", 1, 0, 100),
            pool_max=_int(get, "APP_DB_POOL_MAX", 10, 1, 100),
            pool_timeout=_float(get, "APP_DB_POOL_TIMEOUT", 10.0, 0.1, 300),
            worker_enabled=_bool(get, "APP_WORKER_ENABLED", True),
            worker_concurrency=_int(get, "APP_WORKER_CONCURRENCY", 2, 1, 32),
            worker_poll_interval=_float(get, "APP_WORKER_POLL_INTERVAL", 1.0, 0.05, 60),
            expected_models=_int(get, "APP_EXPECTED_MODELS", EXPECTED_MODEL_COUNT, 1, 100),
            log_level=log_level,
            release=_int(get, "APP_SCHEMA_VERSION", SCHEMA_VERSION, 1, 9999),
            instance_id=get("APP_INSTANCE_ID", ""),
            heartbeat_interval=_float(get, "APP_HEARTBEAT_INTERVAL", 5.0, 0.05, 300),
        )
        if settings.pool_min > settings.pool_max:
            raise ConfigError("APP_DB_POOL_MIN is larger than APP_DB_POOL_MAX.")
        return settings


def _int(get, name: str, default: int, low: int, high: int) -> int:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer.") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}.")
    return value


def _float(get, name: str, default: float, low: float, high: float) -> float:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number.") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}.")
    return value


def _bool(get, name: str, default: bool) -> bool:
    raw = get(name)
    if raw is None:
        return default
    words = {
        "1": True,
        "true": True,
        "yes": True,
        "on": True,
        "0": False,
        "false": False,
        "no": False,
        "off": False,
    }
    try:
        return words[raw.lower()]
    except KeyError:
        raise ConfigError(f"{name}={raw!r} is not a boolean (true/false).") from None
