"""migrate: apply the pending migrations with migrations.migrate, as the deploy does."""

from __future__ import annotations

from dataclasses import dataclass

from shipshape.ops.runbooks.steps.base import Arg, Context, PlannedStep, StepKind
from shipshape.ops.runbooks.steps.sqltext import migration_blocks
from shipshape.ops.runbooks.steps.state import projected_history_row

RETRY_FAILED = Arg("retry_failed", "bool", default=False)


@dataclass(frozen=True)
class MigratePlan:
    versions: list[int]  # what the plan showed; the run applies whatever is pending


def plan(ctx: Context, planned: PlannedStep[MigratePlan]) -> None:
    from shipshape.engine import migrations

    retry = RETRY_FAILED.of(planned.step)
    entries = migrations.status(ctx.loaded, ctx.history)
    migrations.refuse_unsafe(entries, ctx.loaded, retry_failed=retry)
    todo = migrations.plan(ctx.loaded, ctx.history)
    if not todo:
        planned.skip = "no pending migration"
        return
    migrations.refuse_destructive(ctx.env, todo, rollback=False)
    planned.sql = migration_blocks(todo)
    failed = [m.name for m in todo if m.version in ctx.history]
    planned.summary = (
        f"apply {len(todo)} migration(s): {', '.join(m.name for m in todo)}"
        + (f" (re-running {', '.join(failed)}, recorded as failed)" if failed else ""))
    planned.data = MigratePlan([m.version for m in todo])
    for m in todo:
        ctx.history[m.version] = projected_history_row(m, "migrate")


def run(ctx: Context, planned: PlannedStep[MigratePlan]) -> str:
    from shipshape.engine import migrations

    _, applied = migrations.migrate(ctx.conn, ctx.env, ctx.loaded, progress=ctx.progress,
                                    retry_failed=RETRY_FAILED.of(planned.step))
    return f"{len(applied)} migration(s) applied: {', '.join(m.name for m in applied)}"


MIGRATE = StepKind(
    "migrate", plan=plan, run=run, args=(RETRY_FAILED,),
    doc="apply the pending migrations with their own SQL, each in its own "
        "transaction with its history row (`invoke db.migrate`); with "
        "`retry_failed`, re-run a migration whose history row says it failed",
)
