"""Targets: an environment's settings plus the database it operates on.

Where the database is: --dsn > DATABASE_URL > the Pulumi stack's output > the embedded
server (`local` only). The adapters below (embedded server, Pulumi stack outputs) are
asked in that order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from shipshape.errors import ConfigError
from shipshape.secrets import redact, register_dsn
from shipshape.settings import Environment


@dataclass(frozen=True)
class Target:
    """A database to operate on, and where its DSN came from (shown redacted)."""

    env: Environment
    dsn: str
    source: str

    def describe(self) -> str:
        return f"{redact(self.dsn)} (env {self.env.name}, from {self.source})"


NOT_RUNNING = "embedded server, not running"


def resolve_target(env: Environment, dsn: str | None = None, *, environ: dict | None = None,
                   start: bool = True) -> Target:
    """Where env's database is: --dsn > DATABASE_URL > the output of the Pulumi stack of
    env's name (dev, eu-prod, ...) > the embedded server (`local`, which has no stack).

    An explicit DSN always wins, also for `local`. With start=False (read-only commands)
    a stopped embedded server stays stopped: the target then has no DSN and its source
    says NOT_RUNNING.
    """
    environ = os.environ if environ is None else environ
    if dsn:
        target = Target(env, dsn, "--dsn")
    elif environ.get("DATABASE_URL"):
        target = Target(env, environ["DATABASE_URL"], "DATABASE_URL")
    elif env.is_local:
        from shipshape.adapters import embedded

        if start:
            target = Target(env, embedded.ensure_local(env.database), "embedded server")
        else:
            running = embedded.running_local_dsn(env.database)
            target = Target(env, running or "", "embedded server" if running else NOT_RUNNING)
    elif stack_dsn := _stack_dsn(env.name):
        target = Target(env, stack_dsn, f"Pulumi stack {env.name}")
    else:
        from shipshape.outputs import DATABASE_URL

        raise ConfigError(
            f"No database for env {env.name}. Give it one of three ways: --dsn URL; the "
            f"DATABASE_URL environment variable; or the output `{DATABASE_URL}` of the Pulumi "
            f"stack {env.name}, read through the Pulumi CLI when it is installed, logged in and "
            f"the stack is up (`invoke infra.up --env {env.name}`, then `invoke infra.outputs "
            f"--env {env.name}`). Only `local` starts an embedded server by itself."
        )
    register_dsn(target.dsn)
    return target


def _stack_dsn(env_name: str) -> str | None:
    """The DSN the env's Pulumi stack exports; None without the CLI, the stack or the output."""
    from shipshape.adapters import automation
    from shipshape.outputs import DATABASE_URL

    return automation.stack_output(env_name, DATABASE_URL)
