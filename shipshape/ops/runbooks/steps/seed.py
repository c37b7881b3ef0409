"""seed: upsert the env's declared seed rows with seeds.apply, as the deploy does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipshape.ops.runbooks.steps.base import Context, PlannedStep, StepKind

if TYPE_CHECKING:
    from shipshape.engine.seeds import Seed


@dataclass(frozen=True)
class SeedPlan:
    declared: list[Seed]  # the seed files the plan rendered, applied as they are


def plan(ctx: Context, planned: PlannedStep[SeedPlan]) -> None:
    from shipshape.engine import seeds

    declared = seeds.load(ctx.sql_dir, ctx.env)
    if not declared:
        planned.skip = "no seed file applies to this env"
        return
    planned.sql = seeds.script(declared, env=ctx.env)
    rows = sum(len(s.rows) for s in declared)
    planned.summary = (f"upsert {rows} declared row(s) of {len(declared)} seed file(s) "
                       f"({', '.join(s.path.name for s in declared)}); nothing is deleted")
    planned.data = SeedPlan(declared)


def run(ctx: Context, planned: PlannedStep[SeedPlan]) -> str:
    from shipshape.engine import seeds

    results = seeds.apply(ctx.conn, ctx.env, planned.plan.declared)
    return (f"{sum(r.inserted for r in results)} inserted, {sum(r.updated for r in results)} "
            f"updated, {sum(r.unchanged for r in results)} unchanged")


SEED = StepKind(
    "seed", plan=plan, run=run,
    doc="upsert the env's declared seed rows (`invoke db.seed`); inserts and "
        "updates, never deletes",
)
