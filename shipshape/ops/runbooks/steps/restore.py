"""restore: rebuild what the migrations define and the database lacks or has changed,
taking every definition from a shadow database built from the same migrations.

A missing column is added back first (at the end of its table), then defaults and NOT
NULL, constraints, indexes and grants. Restore never drops a table, a column or a row,
and never invents a value: what it cannot rebuild (rebuild.py says why) is left for
escalation, with whatever needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipshape.ops.runbooks.steps.base import Arg, Context, PlannedStep, StepKind
from shipshape.ops.runbooks.steps.rebuild import (
    Gone,
    Statement,
    missing_dependency,
    statements_for,
    stays_missing,
    violated,
)
from shipshape.ops.runbooks.steps.state import expected_schema, projected_schema
from shipshape.text import one_line

if TYPE_CHECKING:
    import psycopg

    from shipshape.engine.catalog import Difference
    from shipshape.errors import ShipshapeError


# A foreign key that rows would violate is left (named, with the runbook that restores
# the parents) rather than failing the run; a runbook that restores the parents in an
# earlier step says `leave_violated: false`, since its plan sees the rows before they do.
LEAVE_VIOLATED = Arg("leave_violated", "bool", default=True)


@dataclass(frozen=True)
class RestorePlan:
    statements: list[Statement]  # in the order they run


def plan(ctx: Context, planned: PlannedStep[RestorePlan]) -> None:
    from shipshape.engine import boundary

    expected = expected_schema(ctx)
    # objects the env declares unmanaged are not the migrations': restore never touches them
    differences, _ = boundary.split(expected, projected_schema(ctx),
                                    boundary.of(ctx.env, ctx.sql_dir))
    statements: list[Statement] = []
    gone: set[Gone] = set()  # the tables and columns that stay missing
    for d in _plain_first(differences):
        needs = missing_dependency(d, gone)
        if needs:
            built, why_left = [], f"it needs {needs}, which stays missing"
        else:
            built, why_left = statements_for(ctx, d, expected)
            if built and LEAVE_VIOLATED.of(planned.step):
                why_left = violated(ctx, d)
                built = [] if why_left else built
        if why_left:
            planned.left.append(f"{d.describe()} ({why_left})")
            gone |= stays_missing(d)
        statements += built
    if not statements:
        planned.skip = "nothing that restore can rebuild"
        return
    # Columns (0, generated ones 3) before defaults and NOT NULL (1, 2), constraints
    # (10-15), indexes (20, 21) and grants (30, 31): what needs a column comes after it.
    statements.sort(key=lambda s: s.order)
    planned.sql = "\n".join(s.sql + ";" for s in statements)
    planned.summary = f"{len(statements)} statement(s) rebuilding what the migrations define"
    planned.data = RestorePlan(statements)


def _plain_first(differences: list[Difference]) -> list[Difference]:
    """Missing tables and plain columns first: an index, a constraint or a generated
    column that needs one of them which stays missing cannot be built, and is left with it."""
    first, then = [], []
    for d in differences:
        plain = d.change == "missing" and (
            d.kind == "table" or (d.kind == "column" and not d.expected.get("generated")))
        (first if plain else then).append(d)
    return first + then


def run(ctx: Context, planned: PlannedStep[RestorePlan]) -> str:
    import psycopg

    from shipshape import db

    conn = ctx.conn
    statements = planned.plan.statements
    in_tx = [s.sql for s in statements if s.transactional]
    outside = [s.sql for s in statements if not s.transactional]
    running = _Running()
    try:
        if in_tx:
            db.retry_on_lock_timeout(
                conn, ctx.env, lambda: _in_transaction(ctx, planned, in_tx, running,
                                                       record=not outside),
                what=f"Step {planned.step.id}",
                then="run the runbook again; nothing of this step was applied.")
        if outside:
            _outside_transaction(ctx, outside, running)
    except psycopg.errors.LockNotAvailable:  # a CONCURRENTLY statement, outside the retries
        raise _busy(ctx, planned, running.sql) from None
    except psycopg.Error as exc:
        raise _failed(ctx, planned, running.sql, exc) from None
    return f"{len(statements)} statement(s) applied"


@dataclass
class _Running:
    """The statement running, for the message when it fails."""

    sql: str = ""


def _in_transaction(ctx: Context, planned: PlannedStep, sqls: list[str], running: _Running, *,
                    record: bool) -> None:
    """sqls in one transaction with the env's timeouts; with record, the step's row too."""
    from shipshape import db

    conn = ctx.conn
    with conn.transaction():
        db.set_local_timeouts(conn, ctx.env)
        for sql in sqls:
            running.sql = sql
            conn.execute(sql)
        if record:
            ctx.record(planned, "done")


def _outside_transaction(ctx: Context, sqls: list[str], running: _Running) -> None:
    """sqls one by one in autocommit (CREATE INDEX CONCURRENTLY), with the env's timeouts."""
    from shipshape import db

    with db.autocommit(ctx.conn, ctx.env):
        for sql in sqls:
            running.sql = sql
            ctx.conn.execute(sql)


def _busy(ctx: Context, planned: PlannedStep, sql: str) -> ShipshapeError:
    from shipshape import db
    from shipshape.errors import Busy

    return Busy(f"Step {planned.step.id} could not get its locks within lock_timeout="
                f"{ctx.env.lock_timeout} at `{one_line(sql)[:200]}`; blocking: "
                f"{db.describe_holders(db.table_lock_holders(ctx.conn))}. An index "
                f"it was building may be left INVALID (doctor shows it); run the runbook "
                f"again when they are gone.")


def _failed(ctx: Context, planned: PlannedStep, sql: str, exc: psycopg.Error) -> ShipshapeError:
    import psycopg

    from shipshape import db
    from shipshape.errors import SQLFailed

    conn = ctx.conn
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    return SQLFailed(
        f"Step {planned.step.id} failed at `{one_line(sql)[:200]}`: "
        f"{db.server_message(exc)}. Its transaction was rolled back: nothing of this step was "
        f"applied. Rows that violate it must be fixed first (see the CHECK_FAILED "
        f"findings and runbook data-integrity).")


RESTORE = StepKind(
    "restore", plan=plan, run=run, args=(LEAVE_VIOLATED,),
    doc="add a missing column back to its table (`ALTER TABLE ... ADD COLUMN` with "
        "its type, collation, default or generated expression and NOT NULL), then "
        "rebuild drifted indexes, constraints (e.g. an FK without ON DELETE CASCADE), "
        "column NOT NULL/defaults and grants exactly as the migrations define them, "
        "taking each definition from a shadow database built from the same "
        "migrations; never drops a table, a column or a row, and never invents a "
        "value: a NOT NULL column without a default on a table with rows, an identity "
        "or a serial column is left for escalation, with the indexes and constraints "
        "that need it; so is a foreign key that rows would violate (their parents "
        "gone: restore them first), unless `leave_violated: false`; a grant to a role no "
        "migration grants to is never revoked, and objects the env declares unmanaged are "
        "never touched",
)
