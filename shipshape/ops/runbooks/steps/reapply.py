"""reapply: re-run, with its own SQL and history row, each recorded migration all of
whose tables and columns are missing (the history says applied, the objects are not
there).

One whose objects are only partly missing is not re-run: its SQL has no IF NOT EXISTS,
on purpose, and would fail on the first that exists; restore adds its missing columns
back. What a re-run creates is projected into ctx.recreated, so the steps after it are
planned against the schema they will see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipshape.errors import Refused
from shipshape.ops.runbooks.steps.base import Context, PlannedStep, StepKind
from shipshape.ops.runbooks.steps.sqltext import migration_blocks
from shipshape.ops.runbooks.steps.state import applied_migrations, expected_schema, live_schema
from shipshape.text import listing

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shipshape.engine.migrations import Migration

# The objects reapply re-creates, and the snapshot section that holds each kind.
_CREATED = {"table": "tables", "column": "columns"}

Object = tuple[str, str]  # (kind, name): ("table", "avatars"), ("column", "avatars.name")


@dataclass(frozen=True)
class ReapplyPlan:
    versions: list[int]  # the migrations to re-run, in order


@dataclass(frozen=True)
class _Creator:
    """A recorded migration that creates missing objects, and the shadow snapshots of the
    migrations up to it and up to the one before it: what it creates is the difference."""

    migration: Migration
    creates: list[Object]
    snapshot: dict
    before: dict

    def missing(self, absent: set[Object]) -> list[Object]:
        return [o for o in self.creates if o in absent]

    def rerunnable(self, absent: set[Object]) -> bool:
        missing = self.missing(absent)
        return bool(missing) and len(missing) == len(self.creates)


def plan(ctx: Context, planned: PlannedStep[ReapplyPlan]) -> None:
    """Re-run a recorded migration only when every table and column it creates is missing."""
    from shipshape.engine import history

    ctx.recreated.clear()  # mutated, not replaced: the run plans on copies of ctx
    applied = applied_migrations(ctx, history.read_history(ctx.conn))
    expected = expected_schema(ctx, applied)
    absent = _absent(expected, live_schema(ctx))
    if not absent:
        planned.skip = "no table or column of an applied migration is missing"
        return
    todo, partial = _rerunnable(_creators(ctx, applied, absent, expected), absent)
    not_run = _not_rerun(partial, absent)
    if not todo:
        planned.skip = not_run or "no recorded migration creates the missing tables and columns"
        return
    _refuse_unsafe(todo)
    planned.sql = migration_blocks([c.migration for c in todo], "re-run ")
    planned.summary = "; ".join(
        f"re-run {c.migration.name}: {listing(_folded(c.creates))} missing" for c in todo) + (
        f"; {not_run}" if not_run else "")
    planned.data = ReapplyPlan([c.migration.version for c in todo])
    if not planned.done_before:  # done in an earlier attempt, it does not run again
        _project(ctx, todo)


def _absent(expected: dict, actual: dict) -> set[Object]:
    """The tables and columns the recorded migrations create that the database lacks."""
    return {(kind, name) for kind, section in _CREATED.items()
            for name in (expected.get(section) or {}) if name not in (actual.get(section) or {})}


def _creators(ctx: Context, applied: list[Migration], absent: set[Object],
              expected: dict) -> list[_Creator]:
    """The migrations that create the absent objects. Each object belongs to the first
    migration whose shadow snapshot has it; what a migration creates is the difference
    between its prefix's snapshot and the one before."""
    creators = []
    unowned = set(absent)
    before: dict = {}
    for i, m in enumerate(applied, 1):
        if not unowned:
            break
        snap = expected_schema(ctx, applied[:i])
        mine = {o for o in unowned if o[1] in (snap.get(_CREATED[o[0]]) or {})}
        if mine:
            creators.append(_Creator(m, _created(snap, before, expected), snap, before))
            unowned -= mine
        before = snap
    return creators


def _created(snap: dict, before: dict, expected: dict) -> list[Object]:
    """The tables and columns in snap but not in before (one migration's, when they are
    the shadow snapshots of consecutive prefixes) that the recorded migrations still have."""
    return sorted((kind, name) for kind, section in _CREATED.items()
                  for name in (snap.get(section) or {})
                  if name not in (before.get(section) or {})
                  and name in (expected.get(section) or {}))


def _rerunnable(creators: list[_Creator],
                absent: set[Object]) -> tuple[list[_Creator], list[_Creator]]:
    """The creators all of whose objects are missing, and the others."""
    todo = [c for c in creators if c.rerunnable(absent)]
    return todo, [c for c in creators if not c.rerunnable(absent)]


def _not_rerun(partial: list[_Creator], absent: set[Object]) -> str:
    """Why each migration whose objects are only partly missing is not re-run."""
    reasons = []
    for c in partial:
        missing = c.missing(absent)
        reasons.append(
            f"{c.migration.name} is not re-run: {len(missing)} of the {len(c.creates)} tables and "
            f"columns it creates {'is' if len(missing) == 1 else 'are'} missing "
            f"({listing(_folded(missing))}) and its SQL would fail on those that exist")
    return ("; ".join(reasons) + " (restore adds a missing column back from the shadow "
            "database's definition)") if reasons else ""


def _folded(objects: list[Object]) -> list[str]:
    """`kind name` for each object, the columns of a listed table left out."""
    tables = {name for kind, name in objects if kind == "table"}
    return [f"{kind} {name}" for kind, name in objects
            if kind == "table" or name.rsplit(".", 1)[0] not in tables]


def _refuse_unsafe(todo: list[_Creator]) -> None:
    for c in todo:
        m = c.migration
        if not m.transactional or m.destructive:
            raise Refused(
                f"{m.name} created missing objects but cannot be re-run safely "
                f"({'it is not transactional' if not m.transactional else 'it is destructive'}); "
                f"restore its objects through a new migration.")


def _project(ctx: Context, todo: list[_Creator]) -> None:
    """Into ctx.recreated: what re-running todo creates, for the steps after this one."""
    for section, name, value in _recreated(todo):
        ctx.recreated.setdefault(section, {})[name] = value


def _recreated(todo: list[_Creator]) -> Iterator[tuple[str, str, dict | None]]:
    """What re-running todo changes, in order: (section, name, definition or None) for
    each object as the migration's shadow prefix has it."""
    for c in todo:
        for section in c.snapshot.keys() | c.before.keys():
            mine, theirs = c.snapshot.get(section) or {}, c.before.get(section) or {}
            for name in mine.keys() | theirs.keys():
                if mine.get(name) != theirs.get(name):
                    yield section, name, mine.get(name)


def run(ctx: Context, planned: PlannedStep[ReapplyPlan]) -> str:
    from shipshape.engine import guard, migrations

    by_version = {m.version: m for m in ctx.loaded}
    done = []
    watcher = guard.Guard(ctx.conn)  # the runtime guard, as a deploy's migrate has it
    for version in planned.plan.versions:
        m = by_version[version]
        with ctx.progress.step(f"re-run {m.name}") as step:
            applied_by = f"runbook {ctx.book.id} by {ctx.operator}"
            took = migrations.apply(ctx.conn, ctx.env, m, applied_by=applied_by, watcher=watcher)
            step.note(f"{took} ms")
        done.append(m.name)
    return f"re-ran {', '.join(done)}"


REAPPLY = StepKind(
    "reapply", plan=plan, run=run,
    doc="re-run, with its own SQL, each applied migration all of whose tables and "
        "columns are missing (the history says applied, the objects are not there); "
        "one whose objects are only partly missing is not re-run (its SQL would fail "
        "on those that exist; the plan says so), and restore adds its missing columns "
        "back; a re-run fails loudly and changes nothing if any of its other objects "
        "exist",
)
