"""A runbook run, phase by phase: detect -> plan -> confirm -> execute -> verify -> report.

The whole run holds the deploy's lock, detection included: nobody migrates between the
plan that is shown and the steps that run. Its state lives in the database
(run_state.py): a step recorded as done is never applied again, and a rerun of an
unfinished run resumes after the last step that succeeded.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from shipshape.errors import ProblemsFound, Refused, ShipshapeError
from shipshape.ops.runbooks.book import Runbook, command, get
from shipshape.ops.runbooks.confirmation import Ask, require_confirmation
from shipshape.ops.runbooks.display import render_plan
from shipshape.ops.runbooks.incident_reports import write_reports
from shipshape.ops.runbooks.loading import load
from shipshape.ops.runbooks.result import RunResult
from shipshape.ops.runbooks.run_state import (
    close_resolved_run,
    finish_run,
    is_idle,
    open_run,
    start_run,
)
from shipshape.ops.runbooks.steps import STEP_KINDS, Context, PlannedStep
from shipshape.targets import Target
from shipshape.text import listing

if TYPE_CHECKING:
    import psycopg

    from shipshape.engine.tree import Tree
    from shipshape.ops.doctor import Diagnosis
    from shipshape.ops.triage import Group
    from shipshape.progress import Progress
    from shipshape.settings import Environment


def run(target: Target, sql_dir: Path | str, name: str, *, runbooks: list[Runbook] | None = None,
        runbooks_dir: Path | str | None = None, dry_run: bool = False, yes: bool = False,
        reason: str | None = None, confirm: Ask | None = None, long_transaction: str | None = None,
        progress: Progress | None = None, reports_dir: Path | str | None = None,
        show: Callable[[str], None] | None = None, app_check=None,
        command_options: dict | None = None) -> RunResult:
    """Run a runbook against target. Returns the result when it fixed the problem (or had
    nothing to do, or only planned); raises the failing step's error otherwise, with the
    result attached as `exc.result` (a report is written for every run that changed
    something or escalated).

    confirm: callable(question) -> bool, or None when there is no terminal to ask on
    (then only --yes confirms). show: callable(text), to print the plan before confirming.
    """
    from shipshape.engine import history, tree

    request = _request(target, Path(sql_dir), name, runbooks=runbooks, runbooks_dir=runbooks_dir,
                       long_transaction=long_transaction, progress=progress,
                       reports_dir=reports_dir, app_check=app_check,
                       command_options=command_options, dry_run=dry_run)
    book, env = request.book, request.env
    result = _new_result(request, reason)
    code = tree.load(request.sql_dir, env)  # once: both diagnoses and every step read it
    with ExitStack() as held:
        conn = _connect(held, request, dry_run=dry_run)
        diagnosis = _detect(request, result, code)
        if not result.mine:
            return _nothing_to_do(result, book, diagnosis, conn, dry_run)
        if book.escalate_only:
            raise _escalate(request, result)
        ctx = Context(book=book, target=target, sql_dir=request.sql_dir, conn=conn,
                      renderer=code.renderer, loaded=code.migrations, diagnosis=diagnosis,
                      history=dict(history.read_history(conn)), progress=request.progress,
                      operator=result.operator, rerun=request.command_for(book),
                      reason=result.reason or "")
        unfinished, done = open_run(conn, book.id, env.name)
        _plan(request, ctx, result, done)
        (show or _show_nothing)(render_plan(result, book))
        if dry_run:
            result.outcome = "dry-run"
            result.message = "Dry run: nothing was changed."
            return result
        _confirm(result, book, env, yes=yes, confirm=confirm)
        ctx.record = start_run(conn, result, unfinished)
        _execute(request, ctx, result)
        return _verify(request, ctx, result, code)


def _show_nothing(text: str) -> None:
    return None


# --- what the run needs to know ---------------------------------------------------------------

@dataclass(frozen=True)
class _Request:
    """What the operator asked for, as every phase of the run needs it."""

    target: Target
    sql_dir: Path
    runbooks: list[Runbook]
    book: Runbook
    long_transaction: str
    progress: Progress
    reports_dir: Path | str | None
    app_check: Callable | None
    command_options: dict
    dry_run: bool = False

    @property
    def env(self) -> Environment:
        return self.target.env

    def command_for(self, book: Runbook) -> str:
        """The command that runs book, with this run's options (the long-transaction
        threshold only when it is not the default)."""
        from shipshape.ops import doctor

        threshold = self.long_transaction
        return command(book, self.env.name, long_transaction=threshold
                       if threshold != doctor.DEFAULT_LONG_TRANSACTION else None,
                       **self.command_options)


def _request(target: Target, sql_dir: Path, name: str, *, runbooks, runbooks_dir,
             long_transaction, progress, reports_dir, app_check, command_options,
             dry_run: bool = False) -> _Request:
    from shipshape.ops import doctor
    from shipshape.progress import Progress

    progress = progress or Progress()
    runbooks = runbooks if runbooks is not None else load(runbooks_dir, sql_dir=sql_dir)
    return _Request(target=target, sql_dir=sql_dir, runbooks=runbooks, book=get(runbooks, name),
                    long_transaction=long_transaction or doctor.DEFAULT_LONG_TRANSACTION,
                    progress=progress, reports_dir=reports_dir, app_check=app_check,
                    command_options=dict(command_options or {}), dry_run=dry_run)


def _new_result(request: _Request, reason: str | None) -> RunResult:
    from shipshape import db

    book = request.book
    return RunResult(runbook=book.id, title=book.title, env=request.env.name,
                     target=request.target.describe(), operator=db.operator(),
                     reason=(reason or "").strip() or None, started_at=datetime.now(UTC),
                     escalation=list(book.escalate_when), escalate_to=book.escalate_to)


def _connect(held: ExitStack, request: _Request, *, dry_run: bool) -> psycopg.Connection | None:
    """The run's connection, closed when the run ends, and (unless a dry run) the deploy's
    lock on it for the whole run. None for a runbook without steps: it only escalates."""
    from shipshape import db

    if not request.book.steps:
        return None
    conn = db.connect(request.target, purpose=f"runbook {request.book.id}")
    held.callback(_close, conn)
    if not dry_run:
        held.enter_context(_deploy_lock(conn, request.env.migration_lock_wait))
    return conn


@contextmanager
def _deploy_lock(conn: psycopg.Connection, wait: str) -> Iterator[None]:
    """The deploy's advisory lock; releasing it never hides the run's own error (the
    connection may be gone with the failure)."""
    from shipshape import db

    release = ExitStack()
    release.enter_context(db.advisory_lock(conn, wait))
    try:
        yield
    finally:
        with suppress(Exception):
            release.close()


def _close(conn: psycopg.Connection) -> None:
    if not conn.closed:
        conn.close()


# --- detect -----------------------------------------------------------------------------------

def _diagnose(request: _Request, code: Tree) -> tuple[Diagnosis, list[Group]]:
    """Doctor on the target, its findings grouped by the runbook that fixes them."""
    from shipshape.ops import doctor, triage

    diagnosis = doctor.diagnose(request.target, request.sql_dir,
                                long_transaction=request.long_transaction,
                                progress=request.progress, app_check=request.app_check,
                                code=code)
    return diagnosis, triage.group(diagnosis.findings, request.runbooks,
                                   command=request.command_for)


def _others(groups: list[Group], book: Runbook) -> list[tuple[str, str]]:
    """The other runbooks the findings belong to, with their commands, in order."""
    return [(g.runbook.id, g.command) for g in groups
            if g.runbook is not None and g.runbook.id != book.id]


def _detect(request: _Request, result: RunResult, code: Tree) -> Diagnosis:
    from shipshape.ops import triage

    book = request.book
    result.event(f"detect: doctor on {request.target.describe()}")
    diagnosis, groups = _diagnose(request, code)
    result.findings_before = triage.tagged(groups)
    result.mine = [f for f in result.findings_before
                   if f.runbook == book.id or (book.manual and book.triggered_by(f))]
    result.next = _others(groups, book)
    result.event(f"detected {len(diagnosis.findings)} finding(s), {len(result.mine)} for "
                 f"{book.id}")
    return diagnosis


def _nothing_to_do(result: RunResult, book: Runbook, diagnosis: Diagnosis,
                   conn: psycopg.Connection | None, dry_run: bool) -> RunResult:
    if conn is not None and not dry_run:
        close_resolved_run(conn, result)
    if diagnosis.healthy and not diagnosis.findings:
        result.outcome = "nothing-to-do"
        result.message = f"Nothing for {book.id} to do: doctor finds the database healthy."
        return result
    if not result.next:
        result.outcome = "nothing-to-do"
        result.message = (f"Nothing for {book.id} to do; doctor's other findings have no "
                          f"runbook (run `invoke doctor --env {result.env}`).")
        if not diagnosis.healthy:
            result.outcome, result.exit_code = "elsewhere", ProblemsFound.exit_code
            raise _attach(ProblemsFound(result.message, findings=result.findings_before), result)
        return result
    result.outcome, result.exit_code = "elsewhere", ProblemsFound.exit_code
    result.message = (f"No finding is for {book.id}. Doctor's findings belong to: "
                      + "; ".join(f"{r} (`{c}`)" for r, c in result.next) + ".")
    raise _attach(ProblemsFound(result.message, findings=result.findings_before), result)


def _escalate(request: _Request, result: RunResult) -> ShipshapeError:
    """A runbook without steps: its report, and Refused naming whom to escalate to."""
    book = request.book
    result.outcome, result.exit_code = "escalated", Refused.exit_code
    result.message = (f"{book.title}: this runbook fixes nothing by itself; it "
                      f"escalates. {_escalation_text(book)}")
    result.event("escalated: no step can fix this safely")
    return _finish_error(result, Refused(result.message), request)


# --- plan -------------------------------------------------------------------------------------

def _plan(request: _Request, ctx: Context, result: RunResult, done: dict[str, dict]) -> None:
    """result.steps: each step planned with its exact SQL; a refused plan escalates."""
    book = request.book
    try:
        result.steps = _planned_steps(ctx, book, done)
    except ShipshapeError as exc:
        result.outcome, result.exit_code = "escalated", exc.exit_code
        result.message = f"Planning {book.id} stopped: {exc}"
        result.event(f"plan refused: {exc.message}")
        raise _finish_error(result, exc, request, escalate=book) from None
    result.event("plan: " + "; ".join(
        f"{s.step.id}: {s.done_before or s.skip or s.summary}" for s in result.steps))


def _planned_steps(ctx: Context, book: Runbook, done: dict[str, dict]) -> list[PlannedStep]:
    """Each step of book planned in order, each against the history and schema the steps
    before it leave. done: the steps an earlier attempt of this run did, by id."""
    plan = []
    for position, step in enumerate(book.steps, 1):
        planned = PlannedStep(step, position)
        if step.id in done:
            row = done[step.id]
            planned.done_before = (f"done in an earlier attempt of this run "
                                   f"({row['finished_at']:%Y-%m-%d %H:%M:%S %Z}, {row['detail']})")
            planned.status = "already-done"
        with ctx.progress.step(f"plan {step.id} ({step.do})"):
            STEP_KINDS[step.do].plan(ctx, planned)
        plan.append(planned)
    return plan


# --- confirm ----------------------------------------------------------------------------------

def _confirm(result: RunResult, book: Runbook, env: Environment, *, yes: bool,
             confirm: Ask | None) -> None:
    require_confirmation(result, book, env, yes=yes, confirm=confirm)
    result.event("confirmed by " + (f"{result.operator} with --yes" if yes else result.operator)
                 + (f"; reason: {result.reason}" if result.reason else ""))


# --- execute ----------------------------------------------------------------------------------

def _execute(request: _Request, ctx: Context, result: RunResult) -> None:
    """The steps in order; the first that fails stops the run (its error, with the result
    attached, after its report)."""
    for planned in result.steps:
        if planned.done_before:
            result.event(f"step {planned.step.id}: already done, not applied again")
            continue
        planned.started_at = datetime.now(UTC)
        started = time.monotonic()
        try:
            _execute_step(ctx, result, planned, started)
        except ShipshapeError as exc:
            raise _step_failed(request, ctx, result, planned, started, exc)


def _execute_step(ctx: Context, result: RunResult, planned: PlannedStep, started: float) -> None:
    step = planned.step
    fresh = _planned_again(ctx, planned)
    if fresh.skip:
        planned.status, planned.detail = "skipped", fresh.skip
        ctx.record(planned, "skipped")
        ctx.conn.commit()
        result.event(f"step {step.id}: skipped, {fresh.skip}")
        return
    if planned.skip or fresh.sha256 != planned.sha256:
        raise Refused(
            f"Step {step.id}: the database changed since the plan was shown (the step "
            f"would now run other SQL). Nothing of it ran; the steps before it are "
            f"recorded. Run the runbook again to see the new plan.")
    result.event(f"step {step.id} ({step.do}): started, sql sha256 {planned.sha256}")
    planned.data = fresh.data  # the same SQL as shown, planned on the current state
    with ctx.progress.step(f"{planned.position}. {step.id} ({step.do})") as note:
        planned.detail = STEP_KINDS[step.do].run(ctx, planned)
        note.note(planned.detail)
    planned.duration_ms = int((time.monotonic() - started) * 1000)
    planned.status = "done"
    ctx.record(planned, "done")  # a fix or restore already recorded it atomically
    ctx.conn.commit()
    result.event(f"step {step.id}: done in {planned.duration_ms} ms: {planned.detail}")


def _planned_again(ctx: Context, planned: PlannedStep) -> PlannedStep:
    """The step planned again against the database as it is now: what runs must be what
    was shown (earlier steps may have changed what this one sees). A kind that guards
    itself keeps its plan."""
    from shipshape.engine import history
    from shipshape.progress import Progress

    kind = STEP_KINDS[planned.step.do]
    if kind.guards_itself:
        return planned
    ctx.history = dict(history.read_history(ctx.conn))
    fresh = PlannedStep(planned.step, planned.position)
    kind.plan(dataclasses.replace(ctx, progress=Progress()), fresh)
    return fresh


def _step_failed(request: _Request, ctx: Context, result: RunResult, planned: PlannedStep,
                 started: float, exc: ShipshapeError) -> ShipshapeError:
    """The failed step recorded, the steps after it not run, the run failed: exc, saying
    how to resume, with the result attached after its report."""
    step = planned.step
    planned.duration_ms = int((time.monotonic() - started) * 1000)
    planned.status, planned.detail = "failed", str(exc)
    for later in result.steps[planned.position:]:
        if later.status == "planned":
            later.status = "not-run"
    result.outcome, result.exit_code = "failed", exc.exit_code
    result.event(f"step {step.id}: failed: {exc.message}")
    _record_failed(ctx, planned)
    finish_run(ctx.conn, result, "failed")
    result.message = (f"Step {planned.position} ({step.id}) failed; steps before it are "
                      f"done and recorded. Fix the cause, then run `{ctx.rerun}` again: "
                      f"it resumes at {step.id} and never applies a done step twice. "
                      f"{_escalation_text(ctx.book)}")
    exc.message = f"{exc.message}\n{result.message}"
    exc.args = (exc.message,)
    return _finish_error(result, exc, request)


def _record_failed(ctx: Context, planned: PlannedStep) -> None:
    """Best effort: the database may be what failed."""
    conn = ctx.conn
    try:
        if not is_idle(conn):  # end what the failing step left open
            conn.rollback()
        ctx.record(planned, "failed")
        conn.commit()
    except Exception:  # noqa: BLE001, S110 - the database may be what failed
        pass


# --- verify and report ------------------------------------------------------------------------

def _verify(request: _Request, ctx: Context, result: RunResult, code: Tree) -> RunResult:
    """Doctor again: none of the runbook's verify.absent may remain."""
    from shipshape.ops import triage

    book = request.book
    result.event("verify: doctor again")
    after, groups = _diagnose(request, code)
    result.findings_after = triage.tagged(groups)
    result.next = _others(groups, book)
    remaining = [f for f in after.findings if any(m.matches(f) for m in book.verify_absent)]
    if remaining:
        raise _unresolved(request, ctx, result, remaining)
    return _fixed(request, ctx, result)


def _unresolved(request: _Request, ctx: Context, result: RunResult,
                remaining: list) -> ShipshapeError:
    book = request.book
    result.outcome, result.exit_code = "unresolved", ProblemsFound.exit_code
    # What is left may now belong to another runbook (a dropped parent table re-created
    # empty: its foreign keys wait for data-integrity to restore the parents): name it.
    mine = {(f.code, f.object) for f in result.findings_after if f.runbook == book.id}
    handed_on = result.next and not any((f.code, f.object) in mine for f in remaining)
    result.message = (f"{book.id} ran every step, but verify still finds "
                      f"{listing([f'{f.code} {f.object}' for f in remaining])}. "
                      + (f"They now belong to runbook {result.next[0][0]}: run "
                         f"`{result.next[0][1]}`." if handed_on else _escalation_text(book)))
    result.event("verify: still found " + ", ".join(f.code for f in remaining))
    finish_run(ctx.conn, result, "unresolved")
    return _finish_error(result, ProblemsFound(result.message, findings=remaining), request)


def _fixed(request: _Request, ctx: Context, result: RunResult) -> RunResult:
    book = request.book
    result.outcome = "fixed"
    others = len(result.findings_after)
    result.message = (f"{book.id}: fixed; verify finds none of "
                      f"{', '.join(str(m) for m in book.verify_absent)}."
                      + (f" {others} other finding(s) remain; next: `{result.next[0][1]}`."
                         if others and result.next else
                         f" {others} other finding(s) remain (see doctor)." if others
                         else " Verify is clean."))
    result.event("verify: " + ("clean" if not others else f"{others} other finding(s)"))
    finish_run(ctx.conn, result, "fixed")
    write_reports(result, request.reports_dir)
    return result


def _finish_error(result: RunResult, exc: ShipshapeError, request: _Request, *,
                  escalate: Runbook | None = None) -> ShipshapeError:
    """exc, naming whom to escalate to (with escalate) and the report, written now (not
    for a dry run: it writes no file, even when it escalates), with result attached."""
    if escalate is not None and "Escalate" not in exc.message:
        exc.message = f"{exc.message}\n{_escalation_text(escalate)}"
        exc.args = (exc.message,)
    if not request.dry_run:
        write_reports(result, request.reports_dir)
    if result.report_md:
        exc.message = f"{exc.message}\nReport: {result.report_md}"
        exc.args = (exc.message,)
    return _attach(exc, result)


def _attach(exc: ShipshapeError, result: RunResult) -> ShipshapeError:
    exc.result = result
    return exc


def _escalation_text(book: Runbook) -> str:
    return ("Escalate" + (f" to {book.escalate_to}" if book.escalate_to else "") + " when: "
            + "; ".join(book.escalate_when) + ".")
