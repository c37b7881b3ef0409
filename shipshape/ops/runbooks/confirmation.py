"""Who must confirm a run's changes, and how.

`local` asks on a terminal; without one (CI) only --yes confirms. Outside `local` every
change needs --yes, and every env of the prod profile also --reason "...". Ending a session always needs --yes,
and a step that deletes data runs only where the env allows destructive statements.
Every refusal is Refused (exit 3), before anything changed.
"""

from __future__ import annotations

from collections.abc import Callable

from shipshape.errors import Refused
from shipshape.ops.runbooks.book import Runbook
from shipshape.ops.runbooks.result import RunResult
from shipshape.ops.runbooks.steps import PlannedStep
from shipshape.settings import Environment

Ask = Callable[[str], bool]  # a question on the terminal -> the operator's yes or no


def require_confirmation(result: RunResult, book: Runbook, env: Environment, *, yes: bool,
                         confirm: Ask | None) -> None:
    """Refused unless the plan in result may run: its rules hold, and it is confirmed by
    --yes or, in local on a terminal, by the operator's answer to confirm."""
    active = [s for s in result.steps if not s.skip and not s.done_before]
    if not active:
        return
    _check_rules(result, book, env, active, yes=yes)
    if not yes:
        _ask(result, book, env, active, confirm)


def _check_rules(result: RunResult, book: Runbook, env: Environment,
                 active: list[PlannedStep], *, yes: bool) -> None:
    """What no answer on a terminal replaces: prod's reason, the env's permission to
    delete, --yes to end a session."""
    if env.is_prod and not result.reason:
        raise Refused(f"{env.name}: `--reason \"...\"` is required to run {book.id}; it is recorded "
                      f"in shipshape.runbook_runs and the report. Nothing was changed.")
    _check_destructive(env, [s for s in active if s.destructive])
    needs_reason = [s for s in active if s.needs_reason]
    if needs_reason and not result.reason:
        raise Refused(f"Step(s) {', '.join(s.step.id for s in needs_reason)} rewrite what "
                      f"shipshape.history says: rerun with `--reason \"...\"` (it is recorded "
                      f"in the history row). Nothing was changed.")
    needs_yes = [s for s in active if s.needs_yes]
    if needs_yes and not yes:
        raise Refused(f"Step(s) {', '.join(s.step.id for s in needs_yes)} end other sessions "
                      f"(their open transactions roll back): that needs --yes in every env. "
                      f"Read the plan above, then rerun with --yes. Nothing was changed.")


def _check_destructive(env: Environment, destructive: list[PlannedStep]) -> None:
    if destructive and not env.allow_destructive:
        raise Refused(f"Env {env.name} forbids destructive statements, and step(s) "
                      f"{', '.join(s.step.id for s in destructive)} delete data. Nothing was "
                      f"changed. After reviewing the rows in the plan, and only deliberately, "
                      f"rerun with --set allow_destructive=true --yes.")


def _ask(result: RunResult, book: Runbook, env: Environment, active: list[PlannedStep],
         confirm: Ask | None) -> None:
    """Without --yes: only local asks, and only on a terminal."""
    flag = ' --yes --reason "..."' if env.is_prod else " --yes"
    if not env.is_local:
        raise Refused(f"{env.name}: the plan above changes the database; review it, then rerun "
                      f"with{flag}. Nothing was changed.")
    if confirm is None:
        raise Refused("No terminal to confirm on (stdin is not a TTY): review the plan above "
                      "(or `--dry-run`), then rerun with --yes. Nothing was changed.")
    if not confirm(f"Run {len(active)} step(s) of {book.id} on {result.target}? [y/N] "):
        raise Refused("Not confirmed: nothing was changed.")
