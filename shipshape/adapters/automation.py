"""Pulumi's Automation API on this project directory: the CLI check, the stacks, their outputs.

The Automation API drives the Pulumi CLI; it cannot work without it. Every entry point
here checks for the CLI first and stops with ConfigError (exit 5) saying how to install
it, and that `make up` runs the local stack without Pulumi. `pulumi` is imported inside
the functions only, so `invoke --list` stays fast.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from shipshape.errors import ConfigError, Refused
from shipshape.paths import project_root
from shipshape.secrets import redact
from shipshape.settings import known_envs, load_environment

INSTALL_HINT = (
    "Install the Pulumi CLI (https://www.pulumi.com/docs/install/ — e.g. "
    "`curl -fsSL https://get.pulumi.com | sh`, or `brew install pulumi/tap/pulumi`), log in "
    "to a state backend (`pulumi login`, or `pulumi login --local` to keep the state on this "
    "machine), then run the command again. Without Pulumi, `make up` runs the local stack "
    "(embedded PostgreSQL, no Docker), and `invoke deploy --env X --dsn URL` deploys to any "
    "database you already have."
)


def find_cli() -> str | None:
    """The pulumi executable: on PATH, else where the installer puts it ($PULUMI_HOME/bin)."""
    found = shutil.which("pulumi")
    if found:
        return found
    home = Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")
    candidate = home / "bin" / "pulumi"
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def require_cli(what: str) -> str:
    cli = find_cli()
    if cli is None:
        raise ConfigError(
            f"{what} needs the Pulumi CLI, and there is none here (no `pulumi` on PATH nor in "
            f"~/.pulumi/bin). {INSTALL_HINT}")
    return cli


def check_env(env: str, project_dir: Path | None = None) -> None:
    """env names a stack: a profile's own (dev, staging, prod) or any name with a stack file
    that declares its profile; ConfigError (exit 5) otherwise, saying how to make one."""
    if env == "local":
        raise ConfigError(
            "The local env has no Pulumi stack: it runs on the embedded PostgreSQL. Use "
            "`make up` (or `invoke up`); for a stack pass --env with a stack's name "
            f"({', '.join(stack_envs(project_dir))}).")
    load_environment(env, config_dir=project_dir or project_root())


def stack_envs(project_dir: Path | None = None) -> tuple[str, ...]:
    """The envs that are stacks: every known env but local."""
    return tuple(e for e in known_envs(project_dir or project_root()) if e != "local")


def stack(env: str, *, create: bool = False, project_dir: Path | None = None,
          what: str | None = None):
    """The Automation API stack `env` of this project (the program in infra/)."""
    project_dir = project_dir or project_root()
    check_env(env, project_dir)
    cli = require_cli(what or f"Reading the Pulumi stack {env}")
    if not (project_dir / "Pulumi.yaml").is_file():
        raise ConfigError(f"No Pulumi.yaml in {project_dir}: run this from the project directory.")
    from pulumi import automation as auto

    try:
        command = auto.PulumiCommand(root=str(Path(cli).parent.parent))
        opts = auto.LocalWorkspaceOptions(work_dir=str(project_dir), pulumi_command=command)
        if create:
            return auto.create_or_select_stack(stack_name=env, work_dir=str(project_dir), opts=opts)
        return auto.select_stack(stack_name=env, work_dir=str(project_dir), opts=opts)
    except auto.errors.StackNotFoundError:
        raise ConfigError(
            f"The stack {env} does not exist in the Pulumi backend you are logged in to. "
            f"Create it with `invoke infra.up --env {env}` (or `pulumi stack init {env}`), "
            f"or log in to the backend that has it (`pulumi login ...`).") from None
    except (auto.errors.CommandError, auto.errors.InvalidVersionError, OSError) as exc:
        raise _cli_failed(env, exc) from None


def _cli_failed(env: str, exc: Exception) -> ConfigError:
    text = redact(str(exc).strip())
    return ConfigError(f"The Pulumi CLI failed for stack {env}: {text[-1500:]}")


def policy_packs(project_dir: Path | None = None) -> list[str]:
    pack = (project_dir or project_root()) / "policy"
    return [str(pack)] if (pack / "PulumiPolicy.yaml").is_file() else []


def preview(env: str, *, on_output=print):
    target = stack(env, create=True, what=f"`invoke infra.preview --env {env}`")
    return _run(env, lambda: target.preview(on_output=on_output, policy_packs=policy_packs(), diff=False))


def up(env: str, *, on_output=print):
    target = stack(env, create=True, what=f"`invoke infra.up --env {env}`")
    return _run(env, lambda: target.up(on_output=on_output, policy_packs=policy_packs(),
                                       show_secrets=False))


def destroy(env: str, *, yes: bool, dry_run: bool = False, on_output=print):
    """Delete the stack's resources except the protected ones (its data, where protect_data
    is true). Without exclude_protected the CLI refuses the whole destroy as soon as the
    stack has one protected resource, so that is what makes "the data stays" true."""
    if not yes:
        raise Refused(
            f"`infra.destroy --env {env}` deletes the stack's resources except the protected "
            f"ones (the data volume or database Cluster is kept where protect_data is true). "
            f"Run it again with --yes to confirm, or with --dry-run to see what it would delete.")
    target = stack(env, what=f"`invoke infra.destroy --env {env}`")
    if dry_run:
        return _run(env, lambda: target.preview_destroy(on_output=on_output, exclude_protected=True))
    return _run(env, lambda: target.destroy(on_output=on_output, show_secrets=False,
                                            exclude_protected=True))


def outputs(env: str) -> dict:
    """name -> (value, is_secret) of the stack's outputs."""
    target = stack(env, what=f"`invoke infra.outputs --env {env}`")
    values = _run(env, target.outputs)
    return {name: (item.value, item.secret) for name, item in values.items()}


def _run(env: str, work):
    from pulumi import automation as auto

    try:
        return work()
    except auto.errors.CommandError as exc:
        raise _cli_failed(env, exc) from None


def stack_output(env: str, name: str, *, project_dir: Path | None = None) -> str | None:
    """One output of stack `env`; None when there is no CLI, no project, no stack, or no such
    output. Used by DSN resolution (environments.resolve_target), where None means: try
    the next way."""
    if env == "local" or find_cli() is None:
        return None
    project_dir = project_dir or project_root()
    if not (project_dir / "Pulumi.yaml").is_file() or not (project_dir / f"Pulumi.{env}.yaml").is_file():
        return None
    try:
        values = outputs_of(stack(env, project_dir=project_dir))
    except ConfigError:
        return None
    value = values.get(name)
    return str(value) if value not in (None, "") else None


def outputs_of(target) -> dict:
    from pulumi import automation as auto

    try:
        return {key: item.value for key, item in target.outputs().items()}
    except auto.errors.CommandError:
        return {}
