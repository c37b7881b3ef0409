"""A run's state in the database: shipshape.runbook_runs (one row per run, its attempts)
and shipshape.runbook_steps (one row per step that ended). A step recorded as done is
never applied again; a rerun of an unfinished run resumes after its done steps.

Every function commits what it writes, except the recorder a run's steps use: a fix or
restore writes its row inside its own transaction, atomically with its change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from shipshape.ops.runbooks.result import RunResult
from shipshape.ops.runbooks.steps import PlannedStep
from shipshape.secrets import redact

if TYPE_CHECKING:
    import psycopg

Recorder = Callable[[PlannedStep, str], None]


def open_run(conn: psycopg.Connection, runbook: str,
             env: str) -> tuple[dict | None, dict[str, dict]]:
    """The unfinished run a rerun resumes, and its steps that are done, by step id."""
    from psycopg.rows import dict_row

    from shipshape import db

    if not db.table_exists(conn, "shipshape.runbook_runs"):
        conn.commit()
        return None, {}
    with conn.cursor(row_factory=dict_row) as cur:
        run_row = cur.execute(_query("runbook/run_open"),
                              {"runbook": runbook, "env": env}).fetchone()
        steps = cur.execute(_query("runbook/steps_read"),
                            {"run_id": run_row["id"]}).fetchall() if run_row else []
    conn.commit()
    return run_row, {s["step"]: s for s in steps if s["status"] == "done"}


def close_resolved_run(conn: psycopg.Connection, result: RunResult) -> None:
    """Close the unfinished run of result's runbook, if any: nothing is left for it."""
    unfinished, _ = open_run(conn, result.runbook, result.env)
    if not unfinished:
        return
    conn.execute(_query("runbook/run_finish"), {
        "id": unfinished["id"], "status": "resolved",
        "detail": _jsonb({"resolved": f"nothing left for {result.runbook} when rerun by "
                                      f"{result.operator}"})})
    conn.commit()
    result.event(f"closed unfinished run #{unfinished['id']}: nothing left to do")


def start_run(conn: psycopg.Connection, result: RunResult, unfinished: dict | None) -> Recorder:
    """Start the run (or resume the unfinished one): result gets its id and attempt.
    Returns what records a step's row, in the caller's transaction."""
    with conn.transaction():
        conn.execute(_query("runbook_bootstrap"))
    detail = _jsonb({"target": result.target})
    if unfinished:
        row = conn.execute(_query("runbook/run_resume"), {
            "id": unfinished["id"], "reason": result.reason, "detail": detail}).fetchone()
        result.attempt = unfinished["attempts"] + 1
        result.event(f"resumed run #{unfinished['id']} (attempt {result.attempt}), after its "
                     f"done steps")
    else:
        row = conn.execute(_query("runbook/run_insert"), {
            "runbook": result.runbook, "env": result.env, "operator": result.operator,
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

    return record


def finish_run(conn: psycopg.Connection, result: RunResult, status: str) -> None:
    """Best effort: the run's final status (the report still records the run)."""
    if result.run_id is None:
        return
    try:
        if not is_idle(conn):
            conn.rollback()
        conn.execute(_query("runbook/run_finish"), {
            "id": result.run_id, "status": status,
            "detail": _jsonb({"outcome": result.outcome, "last_attempt_by": result.operator})})
        conn.commit()
    except Exception:  # noqa: BLE001, S110 - best effort, the report still records the run
        pass


def is_idle(conn: psycopg.Connection) -> bool:
    import psycopg

    return conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@cache
def _query(name: str) -> str:
    from shipshape.db import query

    return query(name)


def _jsonb(value: dict):
    from psycopg.types.json import Jsonb

    return Jsonb(value)
