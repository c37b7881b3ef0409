"""infra.preview, infra.up, infra.destroy, infra.outputs: the Pulumi stacks, through the
Automation API on this project directory (Pulumi.yaml, program in infra/).

Without the Pulumi CLI each stops with exit 5 and says how to install it; `make up` runs
the local stack without Pulumi. Nothing from pulumi is imported until a task runs.
"""

from __future__ import annotations

from shipshape.tasks._task import task

_HELP = {
    "env": "stack: dev (default), staging or prod",
    "yes": "confirm the destruction of the stack's resources",
}


def _echo(line: str) -> None:
    from shipshape.console import print_text
    from shipshape.secrets import redact

    print_text(redact(line))


@task(help=_HELP)
def preview(c, env="dev"):
    """Show what `infra.up` would change in the env's stack, with the policy pack applied."""
    from shipshape.adapters import automation

    automation.preview(env, on_output=_echo)


@task(help={**_HELP, "dry_run": "show the preview and change nothing (= infra.preview)"})
def up(c, env="dev", dry_run=False):
    """Create or update the env's stack: PostgreSQL, the migration gate, then the app.

    The app containers wait for the gate (migrate -> seed -> verify); a failing gate fails
    the update and leaves the running app as it was.
    """
    from shipshape.adapters import automation

    if dry_run:
        automation.preview(env, on_output=_echo)
    else:
        automation.up(env, on_output=_echo)


@task(help={**_HELP, "dry_run": "show what would be deleted and delete nothing"})
def destroy(c, env="dev", yes=False, dry_run=False):
    """Delete the env's stack resources (needs --yes; protected data volumes stay)."""
    from shipshape.adapters import automation

    automation.destroy(env, yes=yes or dry_run, dry_run=dry_run, on_output=_echo)


@task(help=_HELP)
def outputs(c, env="dev", json_=False):
    """Print the env's stack outputs (app URL, database endpoint, schema version, DSNs).

    Secret outputs show as [secret]: shipshape never prints a password. `pulumi stack
    output --show-secrets database_url` shows one in clear, for whoever may see it.
    """
    from shipshape.adapters import automation
    from shipshape.console import emit_json, print_table

    values = automation.outputs(env)
    shown = {name: "[secret]" if secret else value for name, (value, secret) in values.items()}
    if json_:
        emit_json(shown)
        return
    print_table(f"stack {env}", ["output", "value"],
                [[name, str(value)] for name, value in sorted(shown.items())])
