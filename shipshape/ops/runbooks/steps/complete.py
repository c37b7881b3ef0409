"""complete: a migration whose history row says it failed part-way, though every object
it creates is there. Re-running it would fail on those objects (CREATE TABLE without IF
NOT EXISTS); marking it applied on faith would hide a half-done one. So: prove it first.
A shadow database built from the recorded migrations plus the failed ones must have
exactly this database's schema; only then is its row marked applied. Otherwise the step
does nothing, and the runbook's next step re-runs the migration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipshape.errors import Refused
from shipshape.ops.runbooks.steps.base import Context, PlannedStep, StepKind
from shipshape.ops.runbooks.steps.state import (
    applied_migrations,
    expected_schema,
    live_schema,
    projected_history_row,
)

if TYPE_CHECKING:
    from shipshape.engine.migrations import Migration


@dataclass(frozen=True)
class CompletePlan:
    versions: tuple[int, ...]


def _failed(ctx: Context) -> list[Migration]:
    return [m for m in ctx.loaded
            if m.version in ctx.history and not ctx.history[m.version]["success"]]


def _differences(ctx: Context, failed: list[Migration]) -> list:
    from shipshape.engine import catalog

    built = sorted(applied_migrations(ctx, ctx.history) + failed, key=lambda m: m.version)
    return catalog.diff(expected_schema(ctx, built), live_schema(ctx))


def _applied_by(ctx: Context) -> str:
    return f"completed by runbook {ctx.book.id} by {ctx.operator} after proof"


def plan(ctx: Context, planned: PlannedStep[CompletePlan]) -> None:
    from shipshape.engine import history

    failed = _failed(ctx)
    if not failed:
        planned.skip = "no history row says a migration failed"
        return
    names = ", ".join(m.name for m in failed)
    differences = _differences(ctx, failed)
    if differences:
        planned.skip = (f"{names} is not complete: the schema differs from what it builds "
                        f"({len(differences)} difference(s)), so it is re-run instead")
        return
    planned.summary = (f"mark {names} applied: every object it creates is here, exactly as "
                       f"a shadow database built with it has it")
    planned.sql = ("-- proven first: a shadow database built from the recorded migrations "
                   f"and {names} has exactly this database's schema\n"
                   + ";\n".join(history.record_sql(ctx.conn, m, applied_by=_applied_by(ctx))
                                for m in failed) + ";")
    planned.data = CompletePlan(tuple(m.version for m in failed))
    for m in failed:
        ctx.history[m.version] = projected_history_row(m, _applied_by(ctx))


def run(ctx: Context, planned: PlannedStep[CompletePlan]) -> str:
    from shipshape.engine import history

    ctx.history = dict(history.read_history(ctx.conn))
    failed = [m for m in _failed(ctx) if m.version in planned.plan.versions]
    if _differences(ctx, failed):  # again: the schema may have moved since the plan
        raise Refused("The schema changed since the plan: the failed migration is no longer "
                      "proven complete. Nothing was recorded; run the runbook again.")
    with ctx.conn.transaction():
        for m in failed:
            history.record(ctx.conn, m, applied_by=_applied_by(ctx))
    return f"marked {', '.join(m.name for m in failed)} applied after proving its objects"


COMPLETE = StepKind(
    "complete", plan=plan, run=run,
    doc="mark a migration whose history row says it failed as applied, only after proving "
        "in a shadow database that the recorded migrations plus it build exactly this "
        "schema (every object it creates is here); otherwise nothing, and the next step "
        "re-runs it",
)
