"""A runbook run: detect -> plan -> confirm -> steps -> verify -> report.

RunResult (result.py) is the run as it goes. Its state lives in the database
(shipshape.runbook_runs, shipshape.runbook_steps): a step recorded as done is never applied
again, and a rerun of an unfinished run resumes after the last step that succeeded.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from shipshape.errors import ProblemsFound, Refused, ShipshapeError
from shipshape.ops.runbooks.book import Runbook, command, get
from shipshape.ops.runbooks.confirmation import require_confirmation
from shipshape.ops.runbooks.display import render_plan
from shipshape.ops.runbooks.incident_reports import write_reports
from shipshape.ops.runbooks.loading import load
from shipshape.ops.runbooks.result import RunResult
from shipshape.ops.runbooks.steps import STEP_KINDS, Context, PlannedStep
from shipshape.secrets import redact
from shipshape.settings import Environment
from shipshape.targets import Target
from shipshape.text import listing


def run(target: Target, sql_dir: Path | str, name: str, *, runbooks: list[Runbook] | None = None,
        runbooks_dir: Path | str | None = None, dry_run: bool = False, yes: bool = False,
        reason: str | None = None, confirm=None, long_transaction: str | None = None,
        progress=None, reports_dir: Path | str | None = None, show=None,
        app_check=None, command_options: dict | None = None) -> RunResult:
    """Run a runbook against target. Returns the result when it fixed the problem (or had
    nothing to do, or only planned); raises the failing step's error otherwise, with the
    result attached as `exc.run_result` (a report is written for every run that changed
    something or escalated).

    confirm: callable(question) -> bool, or None when there is no terminal to ask on
    (then only --yes confirms). show: callable(text), to print the plan before confirming.
    """
    from shipshape import db
    from shipshape.engine import migrations
    from shipshape.engine.render import Renderer
    from shipshape.ops import doctor, triage
    from shipshape.progress import Progress

    progress = progress or Progress()
    show = show or (lambda text: None)
    sql_dir = Path(sql_dir)
    runbooks = runbooks if runbooks is not None else load(runbooks_dir, sql_dir=sql_dir)
    book = get(runbooks, name)
    env = target.env
    long_transaction = long_transaction or doctor.DEFAULT_LONG_TRANSACTION
    options = dict(command_options or {})
    result = RunResult(runbook=book.id, title=book.title, env=env.name, target=target.describe(),
                       operator=db.operator(), reason=(reason or "").strip() or None,
                       started_at=datetime.now(UTC), escalation=list(book.escalate_when),
                       escalate_to=book.escalate_to)

    def cmd(other: Runbook) -> str:
        return command(other, env.name, long_transaction=long_transaction
                       if long_transaction != doctor.DEFAULT_LONG_TRANSACTION else None, **options)

    renderer = Renderer(sql_dir, env)
    loaded = migrations.load(sql_dir, env, renderer)
    conn = lock = None
    try:
        if book.steps:
            # The deploy's lock for the whole run, detection included: nobody migrates
            # between the plan that is shown and the steps that run.
            conn = db.connect(target, purpose=f"runbook {book.id}")
            if not dry_run:
                lock = db.advisory_lock(conn, env.migration_lock_wait)
                lock.__enter__()
        result.event(f"detect: doctor on {target.describe()}")
        diagnosis = doctor.diagnose(target, sql_dir, long_transaction=long_transaction,
                                    progress=progress, app_check=app_check)
        groups = triage.group(diagnosis.findings, runbooks, command=cmd)
        result.findings_before = triage.tagged(groups)
        result.mine = [f for f in result.findings_before if f.runbook == book.id]
        result.next = [(g.runbook.id, g.command) for g in groups
                       if g.runbook is not None and g.runbook.id != book.id]
        result.event(f"detected {len(diagnosis.findings)} finding(s), {len(result.mine)} for "
                     f"{book.id}")
        if not result.mine:
            return _nothing_to_do(result, book, diagnosis, conn, dry_run)
        if book.escalate_only:
            result.outcome, result.exit_code = "escalated", Refused.exit_code
            result.message = (f"{book.title}: this runbook fixes nothing by itself; it "
                              f"escalates. {_escalation_text(book)}")
            result.event("escalated: no step can fix this safely")
            raise _finish_error(result, Refused(result.message), reports_dir)
        ctx = Context(book=book, target=target, sql_dir=sql_dir, conn=conn, renderer=renderer,
                      loaded=loaded, diagnosis=diagnosis,
                      history=dict(migrations.read_history(conn)),
                      progress=progress, operator=result.operator, rerun=cmd(book))
        open_run, done = _open_run(conn, book, env)
        try:
            result.steps = _plan(ctx, book, done)
        except ShipshapeError as exc:
            result.outcome, result.exit_code = "escalated", exc.exit_code
            result.message = f"Planning {book.id} stopped: {exc}"
            result.event(f"plan refused: {exc.message}")
            raise _finish_error(result, exc, reports_dir, escalate=book) from None
        result.event("plan: " + "; ".join(
            f"{s.step.id}: {s.done_before or s.skip or s.summary}" for s in result.steps))
        show(render_plan(result, book))
        if dry_run:
            result.outcome = "dry-run"
            result.message = "Dry run: nothing was changed."
            return result
        require_confirmation(result, book, env, yes=yes, confirm=confirm)
        result.event("confirmed by " + (f"{result.operator} with --yes" if yes else result.operator)
                     + (f"; reason: {result.reason}" if result.reason else ""))
        _start_run(ctx, result, open_run)
        _execute(ctx, result, reports_dir)
        result.event("verify: doctor again")
        after = doctor.diagnose(target, sql_dir, long_transaction=long_transaction,
                                progress=progress, app_check=app_check)
        after_groups = triage.group(after.findings, runbooks, command=cmd)
        result.findings_after = triage.tagged(after_groups)
        result.next = [(g.runbook.id, g.command) for g in after_groups
                       if g.runbook is not None and g.runbook.id != book.id]
        remaining = [f for f in after.findings if any(m.matches(f) for m in book.verify_absent)]
        if remaining:
            result.outcome, result.exit_code = "unresolved", ProblemsFound.exit_code
            result.message = (f"{book.id} ran every step, but verify still finds "
                              f"{listing([f'{f.code} {f.object}' for f in remaining])}. "
                              f"{_escalation_text(book)}")
            result.event("verify: still found " + ", ".join(f.code for f in remaining))
            _finish_run(ctx, result, "unresolved")
            raise _finish_error(result, ProblemsFound(result.message, findings=remaining),
                                reports_dir)
        result.outcome = "fixed"
        others = len(result.findings_after)
        result.message = (f"{book.id}: fixed; verify finds none of "
                          f"{', '.join(str(m) for m in book.verify_absent)}."
                          + (f" {others} other finding(s) remain: run "
                             f"{' then '.join(f'`{c}`' for _, c in result.next)}"
                             if others and result.next else
                             f" {others} other finding(s) remain (see doctor)." if others
                             else " Verify is clean."))
        result.event("verify: " + ("clean" if not others else f"{others} other finding(s)"))
        _finish_run(ctx, result, "fixed")
        write_reports(result, reports_dir)
        return result
    finally:
        if lock is not None:
            try:
                lock.__exit__(None, None, None)
            except Exception:  # noqa: BLE001, S110 - the connection may be gone with the failure
                pass
        if conn is not None and not conn.closed:
            conn.close()


def _nothing_to_do(result: RunResult, book: Runbook, diagnosis, conn, dry_run: bool) -> RunResult:
    if conn is not None and not dry_run:
        open_run, _ = _open_run(conn, book, result.env)
        if open_run:
            conn.execute(_query("runbook/run_finish"), {
                "id": open_run["id"], "status": "resolved",
                "detail": _jsonb({"resolved": f"nothing left for {book.id} when rerun by "
                                              f"{result.operator}"})})
            conn.commit()
            result.event(f"closed unfinished run #{open_run['id']}: nothing left to do")
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


def _plan(ctx: Context, book: Runbook, done: dict) -> list[PlannedStep]:
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


def _open_run(conn, book: Runbook, env_name) -> tuple[dict | None, dict]:
    """The unfinished run a rerun resumes, and its steps that are done."""
    from psycopg.rows import dict_row

    from shipshape import db

    env_name = env_name.name if isinstance(env_name, Environment) else env_name
    exists = db.table_exists(conn, "shipshape.runbook_runs")
    if not exists:
        conn.commit()
        return None, {}
    with conn.cursor(row_factory=dict_row) as cur:
        run_row = cur.execute(_query("runbook/run_open"),
                              {"runbook": book.id, "env": env_name}).fetchone()
        steps = cur.execute(_query("runbook/steps_read"),
                            {"run_id": run_row["id"]}).fetchall() if run_row else []
    conn.commit()
    return run_row, {s["step"]: s for s in steps if s["status"] == "done"}


def _start_run(ctx: Context, result: RunResult, open_run: dict | None) -> None:
    conn = ctx.conn
    with conn.transaction():
        conn.execute(_query("runbook_bootstrap"))
    detail = _jsonb({"target": result.target})
    if open_run:
        row = conn.execute(_query("runbook/run_resume"), {
            "id": open_run["id"], "reason": result.reason, "detail": detail}).fetchone()
        result.attempt = open_run["attempts"] + 1
        result.event(f"resumed run #{open_run['id']} (attempt {result.attempt}), after its "
                     f"done steps")
    else:
        row = conn.execute(_query("runbook/run_insert"), {
            "runbook": ctx.book.id, "env": ctx.env.name, "operator": result.operator,
            "reason": result.reason, "detail": detail}).fetchone()
        result.event(f"started run #{row[0]}")
    conn.commit()
    result.run_id = row[0]

    def record(planned: PlannedStep, status: str) -> None:
        conn.execute(_query("runbook/step_record"), {
            "run_id": result.run_id, "step": planned.step.id, "position": planned.position,
            "operation": planned.step.do, "status": status, "sql_sha256": planned.sha256,
            "started_at": planned.started_at or datetime.now(UTC),
            "duration_ms": planned.duration_ms, "operator": result.operator,
            "detail": redact(planned.detail or planned.skip)[:2000]})

    ctx.record = record


def _execute(ctx: Context, result: RunResult, reports_dir) -> None:
    from shipshape.engine import migrations
    from shipshape.progress import Progress

    conn = ctx.conn
    for planned in result.steps:
        step = planned.step
        if planned.done_before:
            result.event(f"step {step.id}: already done, not applied again")
            continue
        planned.started_at = datetime.now(UTC)
        started = time.monotonic()
        try:
            if STEP_KINDS[step.do].guards_itself:
                fresh = planned
            else:
                # Plan again against the database as it is now: what runs must be what
                # was shown (earlier steps may have changed what this one sees).
                ctx.history = dict(migrations.read_history(ctx.conn))
                fresh = PlannedStep(step, planned.position)
                quiet = dataclasses.replace(ctx, progress=Progress())
                STEP_KINDS[step.do].plan(quiet, fresh)
            if fresh.skip:
                planned.status, planned.detail = "skipped", fresh.skip
                ctx.record(planned, "skipped")
                conn.commit()
                result.event(f"step {step.id}: skipped, {fresh.skip}")
                continue
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
            conn.commit()
            result.event(f"step {step.id}: done in {planned.duration_ms} ms: {planned.detail}")
        except ShipshapeError as exc:
            planned.duration_ms = int((time.monotonic() - started) * 1000)
            planned.status, planned.detail = "failed", str(exc)
            for later in result.steps[planned.position:]:
                if later.status == "planned":
                    later.status = "not-run"
            result.outcome, result.exit_code = "failed", exc.exit_code
            result.event(f"step {step.id}: failed: {exc.message}")
            try:
                if not _idle(conn):  # end what the failing step left open
                    conn.rollback()
                ctx.record(planned, "failed")
                conn.commit()
            except Exception:  # noqa: BLE001, S110 - the database may be what failed
                pass
            _finish_run(ctx, result, "failed")
            result.message = (f"Step {planned.position} ({step.id}) failed; steps before it are "
                              f"done and recorded. Fix the cause, then run `{ctx.rerun}` again: "
                              f"it resumes at {step.id} and never applies a done step twice. "
                              f"{_escalation_text(ctx.book)}")
            exc.message = f"{exc.message}\n{result.message}"
            exc.args = (exc.message,)
            raise _finish_error(result, exc, reports_dir)


def _finish_run(ctx: Context, result: RunResult, status: str) -> None:
    if result.run_id is None:
        return
    try:
        conn = ctx.conn
        if not _idle(conn):
            conn.rollback()
        conn.execute(_query("runbook/run_finish"), {
            "id": result.run_id, "status": status,
            "detail": _jsonb({"outcome": result.outcome, "last_attempt_by": result.operator})})
        conn.commit()
    except Exception:  # noqa: BLE001, S110 - best effort, the report still records the run
        pass


def _finish_error(result: RunResult, exc: ShipshapeError, reports_dir, *, escalate=None):
    if escalate is not None and "Escalate" not in exc.message:
        exc.message = f"{exc.message}\n{_escalation_text(escalate)}"
        exc.args = (exc.message,)
    write_reports(result, reports_dir)
    if result.report_md:
        exc.message = f"{exc.message}\nReport: {result.report_md}"
        exc.args = (exc.message,)
    return _attach(exc, result)


def _attach(exc: ShipshapeError, result: RunResult) -> ShipshapeError:
    exc.run_result = result
    exc.result = result
    return exc


def _escalation_text(book: Runbook) -> str:
    return ("Escalate" + (f" to {book.escalate_to}" if book.escalate_to else "") + " when: "
            + "; ".join(book.escalate_when) + ".")


def _idle(conn) -> bool:
    import psycopg

    return conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@cache
def _query(name: str) -> str:
    from shipshape.db import query

    return query(name)


def _jsonb(value: dict):
    from psycopg.types.json import Jsonb

    return Jsonb(value)
