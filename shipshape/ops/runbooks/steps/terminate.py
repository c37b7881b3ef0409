"""terminate: end exactly the sessions doctor named (LOCK_BLOCKING, LONG_TRANSACTION),
each by pid and start time, so a pid reused since the plan is never ended."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipshape.errors import Refused
from shipshape.ops.runbooks.steps.base import Context, PlannedStep, StepKind
from shipshape.ops.runbooks.steps.sqltext import mogrify

if TYPE_CHECKING:
    import psycopg

    from shipshape.ops.doctor import Diagnosis, Session

_CODES = ("LOCK_BLOCKING", "LONG_TRANSACTION")
_WAIT_SECONDS = 10


@dataclass(frozen=True)
class TerminatePlan:
    sessions: list[Session]  # the sessions shown, pid and backend start


def plan(ctx: Context, planned: PlannedStep[TerminatePlan]) -> None:
    sessions = _named_sessions(ctx.diagnosis)
    for s in sessions:
        if s.is_shipshape:
            planned.left.append(f"{s.describe()} is a shipshape run: wait for it to finish, "
                                f"or stop that command")
    sessions = [s for s in sessions if not s.is_shipshape]
    if not sessions:
        planned.skip = "no blocking session to end"
        return
    planned.needs_yes = True
    planned.preview_total = len(sessions)
    planned.preview = [{"pid": s.pid, "application_name": s.application_name,
                        "user": s.usename, "state": s.state,
                        "transaction_open_since": s.xact_start, "locks": s.locks,
                        "blocking": s.blocking, "query": s.query} for s in sessions]
    planned.sql = "\n".join(
        f"-- {s.describe()}, transaction open since {s.xact_start:%Y-%m-%d %H:%M:%S %Z}\n"
        + mogrify(ctx.conn, "runbook/terminate", {"pid": s.pid,
                                                  "backend_start": s.backend_start}) + ";"
        for s in sessions)
    planned.summary = (f"end {', '.join(f'pid {s.pid}' for s in sessions)}: "
                       f"{'; '.join(s.describe() for s in sessions)}")
    planned.data = TerminatePlan(sessions)


def _named_sessions(diagnosis: Diagnosis) -> list[Session]:
    """The sessions behind the findings, once each, in the findings' order."""
    pids: list[int] = []
    for f in diagnosis.findings:
        if f.code in _CODES:
            pid = int(f.object.rsplit(" ", 1)[-1])
            if pid not in pids:
                pids.append(pid)
    return [diagnosis.sessions[p] for p in pids if p in diagnosis.sessions]


def run(ctx: Context, planned: PlannedStep[TerminatePlan]) -> str:
    ended: list[int] = []
    gone: list[int] = []
    for s in planned.plan.sessions:
        if _terminate(ctx.conn, s, ended):
            ended.append(s.pid)
        else:
            gone.append(s.pid)
    return (f"ended pid {', '.join(map(str, ended))}" if ended else "nothing ended") + (
        f"; already gone: pid {', '.join(map(str, gone))}" if gone else "")


def _terminate(conn: psycopg.Connection, s: Session, ended: list[int]) -> bool:
    """End s and wait until it is gone: False when it had already gone (or is another
    session now under the same pid). ended: the pids this step ended before, for the
    message when this one cannot be."""
    import psycopg

    from shipshape import db

    params = {"pid": s.pid, "backend_start": s.backend_start}
    try:
        row = conn.execute(db.query("runbook/terminate"), params).fetchone()
        conn.commit()
    except psycopg.Error as exc:
        conn.rollback()
        raise Refused(f"Cannot end pid {s.pid}: "
                      f"{db.server_message(exc, detail=False)}. The "
                      f"migration role needs pg_signal_backend (or ask a DBA to end it)."
                      + (f" Already ended: pid {', '.join(map(str, ended))}." if ended else "")
                      ) from None
    if not row:
        return False
    deadline = time.monotonic() + _WAIT_SECONDS
    while conn.execute(db.query("runbook/session_alive"), params).fetchone()[0]:
        conn.commit()
        if time.monotonic() > deadline:
            raise Refused(f"pid {s.pid} did not end within {_WAIT_SECONDS} s of "
                          f"pg_terminate_backend.")
        time.sleep(0.05)
    conn.commit()
    return True


TERMINATE = StepKind(
    "terminate", plan=plan, run=run, guards_itself=True,
    doc="end the sessions named by LOCK_BLOCKING / LONG_TRANSACTION findings "
        "(`pg_terminate_backend` of exactly the pids in the plan; always needs "
        "--yes); their open transactions roll back",
)
