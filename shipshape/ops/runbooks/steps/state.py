"""The database as a step's plan sees it: its history and schema now, as the steps
planned before it leave them, and as the recorded migrations define it (a shadow
database's snapshot)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipshape.ops.runbooks.steps.base import Context

if TYPE_CHECKING:
    from shipshape.engine.migrations import Migration


def applied_migrations(ctx: Context, history: dict[int, dict]) -> list[Migration]:
    """The loaded migrations that history records as applied successfully."""
    return [m for m in ctx.loaded if m.version in history and history[m.version]["success"]]


def live_schema(ctx: Context) -> dict:
    from shipshape.engine import catalog

    return catalog.snapshot(ctx.conn)


def projected_schema(ctx: Context) -> dict:
    """The live schema as the steps planned so far leave it (see Context.recreated)."""
    snap = {section: dict(objects) for section, objects in live_schema(ctx).items()}
    for section, objects in ctx.recreated.items():
        for name, value in objects.items():
            if value is None:
                snap.setdefault(section, {}).pop(name, None)
            else:
                snap.setdefault(section, {})[name] = value
    return snap


def expected_schema(ctx: Context, applied: list[Migration] | None = None) -> dict:
    """The schema the recorded migrations (or applied) create: a shadow database's snapshot."""
    from shipshape.engine import history, shadow

    if applied is None:
        applied = applied_migrations(ctx, history.read_history(ctx.conn))
    return shadow.shadow_snapshot(ctx.target, applied, ctx.progress)


def projected_history_row(migration: Migration, applied_by: str) -> dict:
    """The history row a step that applies or adopts migration will have written."""
    from shipshape.engine import history

    return history.projected(migration, applied_by=applied_by)
