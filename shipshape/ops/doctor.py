"""Doctor: every check at once, as findings.

The checks: connection health (reachable, writable, connections against the limit),
sessions that hold locks for too long or block others, everything verify checks
(history, drift against a shadow database, seed rows, data checks), and the app's
readiness when the env has an app_url. Findings keep verify's shape
(code, severity, object, message, fix, runbook); every code is listed in
shipshape.engine.findings.CODES. Which runbook fixes what is shipshape.ops.triage's business.

Read-only: doctor never changes the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from shipshape import db
from shipshape.adapters import app_probe
from shipshape.engine import identity, shadow, tree, verify
from shipshape.engine.findings import Finding
from shipshape.errors import ConfigError, ProblemsFound, Refused
from shipshape.progress import Progress
from shipshape.secrets import redact
from shipshape.settings import parse_duration
from shipshape.targets import NOT_RUNNING, Target

DEFAULT_LONG_TRANSACTION = "60s"
CONNECTIONS_WARN_RATIO = 0.8
_PASSWORD_LITERAL = re.compile(r"(password\s+)'(?:[^']|'')*'", re.IGNORECASE)


@dataclass
class Session:
    """A session of the target database with an open transaction (doctor/sessions.sql)."""

    pid: int
    backend_start: datetime
    xact_start: datetime
    application_name: str
    usename: str
    state: str | None
    xact_seconds: float
    query: str
    locks: str | None
    blocking: list[int] = field(default_factory=list)

    def describe(self) -> str:
        return (f"pid {self.pid} ({self.application_name!r}, user {self.usename}, "
                f"{self.state or 'unknown state'})")

    @property
    def is_shipshape(self) -> bool:
        return self.application_name.startswith("shipshape ")


@dataclass
class Diagnosis:
    """What doctor found: the findings, and the sessions behind the session findings."""

    target: str
    findings: list[Finding]
    sessions: dict[int, Session] = field(default_factory=dict)
    server_version: str | None = None
    # differences on objects the env declares unmanaged: `--json` lists them, nothing else
    ignored: list[dict] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


def diagnose(target: Target, sql_dir: Path | str, *, long_transaction: str = DEFAULT_LONG_TRANSACTION,
             progress: Progress | None = None, app_check=None,
             code: tree.Tree | None = None) -> Diagnosis:
    """Run every check against target; read-only. Never raises for an unhealthy database:
    an unreachable one is the finding DB_UNREACHABLE. `code` is sql_dir already loaded for
    target's env (tree.load), for a caller that has it; else verify loads it."""
    progress = progress or Progress()
    threshold = _threshold(long_transaction)
    diagnosis = Diagnosis(target=target.describe(), findings=[])
    env = target.env
    with progress.step("connection") as step:
        if target.source == NOT_RUNNING:
            diagnosis.findings.append(Finding(
                "DB_UNREACHABLE", "error", "database",
                "The embedded PostgreSQL server of `local` is not running (doctor never "
                "starts or stops a server).", "start it with `invoke up`"))
            step.found("not running")
            return diagnosis
        try:
            conn = db.connect(target, purpose="doctor", autocommit=True,
                                    connect_timeout=min(env.connect_timeout, 5))
        except ConfigError as exc:
            diagnosis.findings.append(Finding(
                "DB_UNREACHABLE", "error", "database", redact(str(exc)),
                "start the server or correct the DSN (--dsn, DATABASE_URL); nothing else "
                "can be checked until it answers"))
            step.found("unreachable")
            return diagnosis
        step.note("connected")
    try:
        # verify's reads must not queue behind a session holding an exclusive lock
        conn.execute("SET lock_timeout = '3s'")
        with progress.step("connection health") as step:
            diagnosis.findings += _connection_findings(conn, diagnosis)
            diagnosis.findings += _identity_findings(conn, env)
            diagnosis.findings += _leftover_findings(target)
            step.note(f"PostgreSQL {diagnosis.server_version}")
        with progress.step("sessions and locks") as step:
            sessions = _sessions(conn)
            found = _session_findings(sessions, threshold, long_transaction)
            diagnosis.sessions = {s.pid: s for s in sessions}
            diagnosis.findings += found
            (step.found if found else step.note)(
                f"{len(sessions)} open transaction(s), {len(found)} finding(s)")
        conn.autocommit = False
        try:
            diagnosis.findings += verify.verify(conn, target, sql_dir, progress=progress,
                                                code=code, sweep=False,
                                                ignored=diagnosis.ignored)
        except psycopg.errors.LockNotAvailable as exc:
            if not conn.closed:
                conn.rollback()
            diagnosis.findings.append(Finding(
                "VERIFY_BLOCKED", "error", "database",
                f"verify could not read a table within 3 s: "
                f"{db.server_message(exc, detail=False)}; another session holds "
                f"an exclusive lock.",
                "see the LOCK_BLOCKING / LONG_TRANSACTION findings; end or wait for that "
                "session, then run doctor again"))
    finally:
        conn.close()
    if env.app_url:
        with progress.step(f"app: {env.app_url}/health/ready") as step:
            diagnosis.findings += _app_findings(env, app_check)
            if any(f.code == "APP_NOT_READY" for f in diagnosis.findings):
                step.found("not ready")
            else:
                step.note("ready")
    return diagnosis


def _threshold(long_transaction: str) -> float:
    try:
        return parse_duration(str(long_transaction))
    except ValueError:
        raise ConfigError(f"--long-transaction {long_transaction!r}: not a duration "
                          f"(e.g. 30s, 500ms, 5min).") from None


# --- the checks ---------------------------------------------------------------------------

def _identity_findings(conn: psycopg.Connection, env) -> list[Finding]:
    try:
        identity.check(conn, env, what="doctor")
    except Refused as exc:
        found = identity.read(conn)
        return [Finding("ENV_MISMATCH", "error", "database", exc.message,
                        f"run doctor with `--env {found.name}`")]
    return []


def _leftover_findings(target: Target) -> list[Finding]:
    """Scratch objects of shadow builds whose owner was killed; reported, not removed
    (doctor changes nothing), each naming the command that removes them."""
    return [Finding("SHADOW_LEFTOVER", "warning", f"scratch {found.kind} {found.name}",
                    f"Left by a killed shadow build: {found.description}.",
                    f"run `invoke db.verify --env {target.env.name}`: every shadow build "
                    f"first removes the leftovers whose owner is gone")
            for found in shadow.leftovers(target)]


def _connection_findings(conn: psycopg.Connection, diagnosis: Diagnosis) -> list[Finding]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(db.query("doctor/connections")).fetchone()
    diagnosis.server_version = row["server_version"]
    findings = []
    if row["in_recovery"]:
        findings.append(Finding(
            "DB_READ_ONLY", "error", "database",
            "The server is a standby in recovery: it refuses every write, so no deploy or "
            "runbook can change it.",
            "point --dsn / DATABASE_URL at the primary"))
    usable = max(row["max_connections"] - row["reserved"], 1)
    if row["used"] >= CONNECTIONS_WARN_RATIO * usable:
        findings.append(Finding(
            "CONNECTIONS_NEAR_LIMIT", "warning", "database",
            f"{row['used']} of {usable} usable connections are in use "
            f"(max_connections {row['max_connections']}, {row['reserved']} reserved).",
            "find idle clients in pg_stat_activity; size the app's pool below the limit"))
    return findings


def _sessions(conn: psycopg.Connection) -> list[Session]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(db.query("doctor/sessions")).fetchall()
    return [Session(pid=r["pid"], backend_start=r["backend_start"], xact_start=r["xact_start"],
                    application_name=redact(r["application_name"]), usename=r["usename"],
                    state=r["state"], xact_seconds=r["xact_seconds"] or 0.0,
                    query=scrub_query(r["query"]), locks=r["locks"],
                    blocking=list(r["blocking"] or [])) for r in rows]


def scrub_query(text: str) -> str:
    """A session's last query as doctor shows it: passwords in literals and DSNs masked."""
    return redact(_PASSWORD_LITERAL.sub(r"\1'***'", text or ""))


def _session_findings(sessions: list[Session], threshold: float,
                      long_transaction: str) -> list[Finding]:
    findings = []
    for s in sessions:
        since = f"{s.xact_start:%Y-%m-%d %H:%M:%S %Z}".strip()
        held = f", holding {s.locks}" if s.locks else ""
        last = f"; last query: {s.query}" if s.query else ""
        if s.blocking:
            findings.append(Finding(
                "LOCK_BLOCKING", "error", f"backend pid {s.pid}",
                f"{s.describe()} blocks {len(s.blocking)} session(s) "
                f"(pid {', '.join(map(str, s.blocking))}); its transaction has been open "
                f"{_seconds(s.xact_seconds)} since {since}{held}{last}.",
                "end that session (runbook blocking-session) or wait for it"))
        elif s.locks and s.xact_seconds >= threshold:
            findings.append(Finding(
                "LONG_TRANSACTION", "error", f"backend pid {s.pid}",
                f"{s.describe()} has had a transaction open for {_seconds(s.xact_seconds)} "
                f"(since {since}, longer than {long_transaction}){held}{last}. A migration "
                f"that needs these tables waits for it and then fails with a lock timeout.",
                "end that session (runbook blocking-session) or ask its owner to commit"))
    return findings


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def _app_findings(env, app_check) -> list[Finding]:
    try:
        (app_check or app_probe.require_ready)(env.app_url)
    except ProblemsFound as exc:
        return [Finding("APP_NOT_READY", "error", f"app {env.app_url}", redact(exc.message),
                        "fix the database findings first; if there are none, read the "
                        "app's logs and its /health/ready checks")]
    return []
