"""baseline: record hand-made migrations as applied, only after proving in a shadow
database that the schema equals what migrations 0001..N produce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipshape.errors import ConfigError, Refused
from shipshape.ops.runbooks.steps.base import Arg, Context, PlannedStep, StepKind
from shipshape.ops.runbooks.steps.state import (
    applied_migrations,
    expected_schema,
    live_schema,
    projected_history_row,
)

if TYPE_CHECKING:
    from shipshape.engine.catalog import Difference
    from shipshape.engine.migrations import Migration

VERSION = Arg("version", "version", default="auto")


@dataclass(frozen=True)
class BaselinePlan:
    version: int  # adopt the migrations up to this one


def plan(ctx: Context, planned: PlannedStep[BaselinePlan]) -> None:
    wanted = VERSION.of(planned.step)
    if wanted == "auto":
        version = _auto_version(ctx)
        if version is None:
            planned.skip = "no object outside the recorded migrations: nothing to adopt"
            return
    else:
        version = _given_version(ctx, wanted)
    adopted = [m for m in ctx.loaded if m.version <= version and m.version not in ctx.history]
    if not adopted:
        planned.skip = f"migrations up to {version:04d} are already recorded"
        return
    planned.summary = (f"record {', '.join(m.name for m in adopted)} as applied: the schema "
                       f"equals what migrations 0001..{version:04d} produce")
    planned.sql = _history_inserts(ctx, adopted, version)
    planned.data = BaselinePlan(version)
    for m in adopted:
        ctx.history[m.version] = projected_history_row(m, "baseline")


def _drift(ctx: Context, expected: dict, actual: dict) -> list[Difference]:
    """The differences, without those on objects the env declares unmanaged."""
    from shipshape.engine import boundary

    return boundary.split(expected, actual, boundary.of(ctx.env, ctx.sql_dir))[0]


def _given_version(ctx: Context, wanted) -> int:
    version = int(wanted)
    if version not in {m.version for m in ctx.loaded}:
        raise ConfigError(f"{ctx.book.path}: steps: baseline version {version}: no "
                          f"migration has version {version:04d}.")
    return version


def _auto_version(ctx: Context) -> int | None:
    """The version to adopt: None when no object is outside the recorded migrations."""
    from shipshape.engine import migrations

    current = migrations.current_version(ctx.history) or 0
    actual = live_schema(ctx)
    expected_now = expected_schema(ctx, applied_migrations(ctx, ctx.history))
    if not [d for d in _drift(ctx, expected_now, actual) if d.change == "unexpected"]:
        return None
    return _matching_version(ctx, current, actual)


def _matching_version(ctx: Context, current: int, actual: dict) -> int:
    """The highest version N whose migrations 0001..N produce exactly the live schema."""
    closest = None
    for version in sorted((m.version for m in ctx.loaded if m.version > current), reverse=True):
        expected = expected_schema(ctx, [m for m in ctx.loaded if m.version <= version])
        differences = _drift(ctx, expected, actual)
        if not differences:
            return version
        if closest is None or len(differences) < len(closest[1]):
            closest = (version, differences)
    if closest is None:
        raise _nothing_creates_them(ctx, actual)
    raise _no_prefix_matches(*closest)


def _nothing_creates_them(ctx: Context, actual: dict) -> Refused:
    expected = expected_schema(ctx, applied_migrations(ctx, ctx.history))
    unexpected = [d.describe() for d in _drift(ctx, expected, actual) if d.change == "unexpected"]
    return Refused(
        "Refusing to baseline: every migration is already recorded, so no migration "
        "creates these objects. Write a migration that creates them (reviewed, then "
        "deployed) or one that drops them:", details=unexpected[:20])


def _no_prefix_matches(version: int, differences: list[Difference]) -> Refused:
    return Refused(
        f"Refusing to baseline: the schema is not what any migrations 0001..N produce, so "
        f"the hand-made objects cannot be adopted as they are. Closest: 0001..{version:04d}, "
        f"with {len(differences)} difference(s); nothing was recorded:",
        details=[d.describe() for d in differences[:20]]
        + ([f"and {len(differences) - 20} more"] if len(differences) > 20 else []))


def _history_inserts(ctx: Context, adopted: list[Migration], version: int) -> str:
    from shipshape.engine import history

    inserts = [history.record_sql(ctx.conn, m, applied_by=f"baseline by runbook {ctx.book.id}")
               for m in adopted]
    return (f"-- proven first: a shadow database built from migrations 0001..{version:04d} "
            f"has exactly this database's schema\n" + ";\n".join(inserts) + ";")


def run(ctx: Context, planned: PlannedStep[BaselinePlan]) -> str:
    from shipshape.engine import baseline, history

    version = planned.plan.version
    if not history.read_history(ctx.conn):
        adopted = baseline.baseline(ctx.conn, ctx.target, ctx.loaded, version,
                                    progress=ctx.progress)
    else:
        adopted = _adopt(ctx, version)
    return f"recorded {len(adopted)} migration(s) up to {version:04d} after proving the schema"


def _adopt(ctx: Context, version: int) -> list[Migration]:
    """baseline for a database that has a history: record the unrecorded migrations up to
    version, only after proving the schema equals what 0001..version produce."""
    from shipshape.engine import history as history_

    conn = ctx.conn
    history = history_.read_history(conn)
    _prove(ctx, version, history)
    todo = [m for m in ctx.loaded if m.version <= version and m.version not in history]
    with conn.transaction():
        for m in todo:
            history_.record(conn, m,
                            applied_by=f"baseline by runbook {ctx.book.id} by {ctx.operator}")
    return todo


def _prove(ctx: Context, version: int, history: dict[int, dict]) -> None:
    """Refused unless migrations 0001..version produce exactly this database's schema and
    none above version is recorded."""
    from shipshape.engine import catalog, migrations

    migrations.refuse_unsafe(migrations.status(ctx.loaded, history), ctx.loaded)
    above = sorted(v for v in history if v > version)
    if above:
        raise Refused(f"Refusing to baseline at {version:04d}: migrations above it are "
                      f"recorded ({', '.join(f'{v:04d}' for v in above)}).")
    expected = expected_schema(ctx, [m for m in ctx.loaded if m.version <= version])
    differences = _drift(ctx, expected, catalog.snapshot(ctx.conn))
    if differences:
        raise Refused(f"Refusing to baseline at {version:04d}: the schema is not what "
                      f"migrations 0001..{version:04d} produce:",
                      details=[d.describe() for d in differences])


BASELINE = StepKind(
    "baseline", plan=plan, run=run, args=(VERSION,),
    doc="record hand-made migrations as applied, only after proving in a shadow "
        "database that the schema equals what migrations 0001..N produce "
        "(`invoke db.baseline`); `version: auto` picks the highest N that matches",
)
