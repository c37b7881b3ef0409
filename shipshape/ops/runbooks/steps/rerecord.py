"""rerecord: an applied migration whose file was edited afterwards, dealt with in one of
two ways. The plan names the first: restore the file as it ran (the exact `git show`
when version control has that version). The step does the second, only after proof: a
shadow database built from the edited files has exactly this database's schema, so the
edit changes nothing that ran; then the history row takes the edited file's checksums,
with who did it and the run's --reason appended to its applied_by."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipshape.errors import Refused
from shipshape.ops.runbooks.steps.base import Context, PlannedStep, StepKind
from shipshape.ops.runbooks.steps.state import applied_migrations, expected_schema, live_schema

if TYPE_CHECKING:
    from shipshape.engine.migrations import Migration


@dataclass(frozen=True)
class RerecordPlan:
    versions: tuple[int, ...]


def edited(ctx: Context) -> list[Migration]:
    """The loaded migrations whose applied history row records another checksum or name."""
    from shipshape.engine import migrations

    mismatched = {e.version for e in migrations.status(ctx.loaded, ctx.history)
                  if e.state == migrations.State.CHECKSUM_MISMATCH}
    return [m for m in ctx.loaded if m.version in mismatched]


def restore_command(ctx: Context, migration: Migration) -> str:
    """How to put back the file the database ran: `git show <commit>:<path> > <path>` when
    a committed version has the recorded checksum, else what to look for."""
    from shipshape.adapters import vcs
    from shipshape.engine.migrations import sha256

    recorded = ctx.history[migration.version]["source_checksum"]
    for commit, relative, text in vcs.versions(migration.path):
        if sha256(text) == recorded:
            return f"git show {commit[:12]}:{relative} > {migration.path}"
    return (f"the version of {migration.path} whose sha256 is {recorded[:12]} "
            f"(not found in git)")


def plan(ctx: Context, planned: PlannedStep[RerecordPlan]) -> None:
    from shipshape.engine import history

    todo = edited(ctx)
    if not todo:
        planned.skip = "no applied migration's file was changed"
        return
    restores = [restore_command(ctx, m) for m in todo]
    _prove(ctx, todo, restores)
    note = _note(ctx)
    planned.summary = (
        f"re-record {', '.join(m.name for m in todo)} with the edited file's checksums: a "
        f"shadow database built from the edited files has exactly this schema. Or, instead "
        f"of this run, restore the file(s) as they ran: " + "; ".join(f"`{r}`" for r in restores))
    planned.sql = ("-- proven first: a shadow database built from the edited migrations has "
                   "exactly this database's schema\n"
                   + ";\n".join(history.rerecord_sql(ctx.conn, m, note=note) for m in todo) + ";")
    planned.needs_reason = True
    planned.data = RerecordPlan(tuple(m.version for m in todo))
    for m in todo:
        ctx.history[m.version] = {**ctx.history[m.version], "name": m.name,
                                  "checksum": m.checksum, "source_checksum": m.source_checksum}


def _note(ctx: Context) -> str:
    return f"by runbook {ctx.book.id} by {ctx.operator}: {ctx.reason or '(reason required)'}"


def _prove(ctx: Context, todo: list[Migration], restores: list[str]) -> None:
    """Refused unless the applied migrations, as the files are now, build exactly this
    database's schema."""
    from shipshape.engine import catalog

    differences = catalog.diff(expected_schema(ctx, applied_migrations(ctx, ctx.history)),
                               live_schema(ctx))
    if differences:
        raise Refused(
            f"The edited {', '.join(m.name for m in todo)} would not build this database's "
            f"schema, so the edit is not harmless and its checksum is not re-recorded. "
            f"Restore the file(s) as they ran ("
            + "; ".join(f"`{r}`" for r in restores)
            + "), put the change in a new migration, then run `invoke doctor`. The "
              "differences:",
            details=[d.describe() for d in differences[:20]])


def run(ctx: Context, planned: PlannedStep[RerecordPlan]) -> str:
    from shipshape.engine import history

    if not ctx.reason:
        raise Refused('Re-recording a checksum needs `--reason "..."`. Nothing was changed.')
    ctx.history = dict(history.read_history(ctx.conn))
    todo = [m for m in edited(ctx) if m.version in planned.plan.versions]
    _prove(ctx, todo, [restore_command(ctx, m) for m in todo])  # again: the schema may have moved
    with ctx.conn.transaction():
        for m in todo:
            history.rerecord(ctx.conn, m, note=_note(ctx))
    return (f"re-recorded {', '.join(m.name for m in todo)} after proving the schema "
            f"unchanged; reason: {ctx.reason}")


RERECORD = StepKind(
    "rerecord", plan=plan, run=run,
    doc="for an applied migration whose file was edited: name the `git show` that restores "
        "the file as it ran, or, after proving in a shadow database that the edited files "
        "build exactly this schema, record the edited file's checksums in its history row "
        "with --reason",
)
