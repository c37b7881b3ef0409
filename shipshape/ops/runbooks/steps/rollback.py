"""rollback: roll back the migrations above `to` with their rollback files."""

from __future__ import annotations

from dataclasses import dataclass

from shipshape.errors import ConfigError
from shipshape.ops.runbooks.steps.base import Arg, Context, PlannedStep, StepKind

TO = Arg("to", "int", required=True)
DESTRUCTIVE = Arg("destructive", "bool", default=False)


@dataclass(frozen=True)
class RollbackPlan:
    to: int


def plan(ctx: Context, planned: PlannedStep[RollbackPlan]) -> None:
    from shipshape.engine import bundle, migrations

    to = TO.of(planned.step)
    todo = migrations.rollback_plan(ctx.loaded, ctx.history, to)
    if not todo:
        planned.skip = f"nothing applied above {to:04d}"
        return
    destructive = any(m.rollback_destructive for m in todo)
    if destructive != bool(DESTRUCTIVE.of(planned.step)):
        raise ConfigError(
            f"{ctx.book.path}: steps[{planned.position - 1}].destructive: the rollback of "
            f"{', '.join(m.name for m in todo)} is {'' if destructive else 'not '}destructive, "
            f"so the step must say `destructive: {'true' if destructive else 'false'}`.")
    migrations.refuse_destructive(ctx.env, todo, rollback=True)
    planned.destructive = destructive
    planned.sql = bundle.rollback_script(ctx.renderer, todo)
    planned.summary = f"roll back {', '.join(m.name for m in todo)}"
    planned.data = RollbackPlan(to)
    for m in todo:
        ctx.history.pop(m.version, None)


def run(ctx: Context, planned: PlannedStep[RollbackPlan]) -> str:
    from shipshape.engine import migrations

    done = migrations.rollback(ctx.conn, ctx.env, ctx.loaded, planned.plan.to,
                               progress=ctx.progress)
    return f"rolled back {', '.join(m.name for m in done)}"


ROLLBACK = StepKind(
    "rollback", plan=plan, run=run, args=(TO, DESTRUCTIVE),
    doc="roll back the migrations above `to` with their rollback files "
        "(`invoke db.rollback`)",
)
