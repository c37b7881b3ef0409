"""Doctor: every check at once, as findings, grouped by the runbook that fixes them.

The checks: connection health (reachable, writable, connections against the limit),
sessions that hold locks for too long or block others, everything verify checks
(history, drift against a shadow database, seed rows, data checks), and the app's
readiness when the env has an app_url. Findings keep verify's shape
(code, severity, object, message, fix, runbook); the codes this module adds are listed
in CODES with verify's, so that runbooks can name any of them.

Read-only: doctor never changes the database.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from shipshape import database, verify
from shipshape.environments import Target, parse_duration, redact
from shipshape.errors import ConfigError, ProblemsFound
from shipshape.report import Progress
from shipshape.verify import Finding

# Every finding code, from verify and from doctor, with what it means. Runbooks may only
# name these (the schema checks it), and docs/runbooks.md lists them.
CODES: dict[str, str] = {
    "MIGRATION_PENDING": "a migration in the code is not applied to the database",
    "MIGRATION_FAILED": "a migration's history row says it failed part-way (success = false)",
    "MIGRATION_CHECKSUM": "an applied migration's file was changed after it ran",
    "MIGRATION_UNKNOWN": "the database has applied a migration that this code does not contain",
    "DRIFT_MISSING": "an object that the applied migrations create is missing",
    "DRIFT_UNEXPECTED": "an object exists that no applied migration creates",
    "DRIFT_CHANGED": "an object differs from what the applied migrations create",
    "SEED_TABLE_MISSING": "a seed file's table or columns do not exist",
    "SEED_MISSING": "declared seed rows are missing",
    "SEED_DIFFERS": "declared seed rows hold other values",
    "CHECK_FAILED": "a data check (sql/checks/) found violating rows",
    "CHECK_ERROR": "a data check could not run (usually: the schema is incomplete)",
    "DB_UNREACHABLE": "the database does not accept a connection",
    "DB_READ_ONLY": "the database is a standby in recovery: it refuses writes",
    "CONNECTIONS_NEAR_LIMIT": "the server is close to max_connections",
    "LOCK_BLOCKING": "a session holds locks that other sessions are waiting for",
    "LONG_TRANSACTION": "a session has held locks on application tables for too long",
    "VERIFY_BLOCKED": "verify could not read a table: a lock held by another session",
    "APP_NOT_READY": "the app's /health/ready does not answer 200",
}

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

    @property
    def healthy(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


def diagnose(target: Target, sql_dir: Path | str, *, long_transaction: str = DEFAULT_LONG_TRANSACTION,
             progress: Progress | None = None, app_check=None) -> Diagnosis:
    """Run every check against target; read-only. Never raises for an unhealthy database:
    an unreachable one is the finding DB_UNREACHABLE."""
    progress = progress or Progress()
    threshold = _threshold(long_transaction)
    diagnosis = Diagnosis(target=target.describe(), findings=[])
    env = target.env
    with progress.step("connection") as step:
        try:
            conn = database.connect(target, purpose="doctor", autocommit=True,
                                    connect_timeout=min(env.connect_timeout, 5))
        except ConfigError as exc:
            diagnosis.findings.append(Finding(
                "DB_UNREACHABLE", "error", "database", redact(str(exc)),
                "start the server or correct the DSN (--dsn, DATABASE_URL); nothing else "
                "can be checked until it answers"))
            step.note("unreachable")
            return diagnosis
        step.note("connected")
    try:
        # verify's reads must not queue behind a session holding an exclusive lock
        conn.execute("SET lock_timeout = '3s'")
        with progress.step("connection health") as step:
            diagnosis.findings += _connection_findings(conn, diagnosis)
            step.note(f"PostgreSQL {diagnosis.server_version}")
        with progress.step("sessions and locks") as step:
            sessions = _sessions(conn)
            found = _session_findings(sessions, threshold, long_transaction)
            diagnosis.sessions = {s.pid: s for s in sessions}
            diagnosis.findings += found
            step.note(f"{len(sessions)} open transaction(s), {len(found)} finding(s)")
        conn.autocommit = False
        try:
            diagnosis.findings += verify.verify(conn, target, sql_dir, progress=progress)
        except psycopg.errors.LockNotAvailable as exc:
            if not conn.closed:
                conn.rollback()
            diagnosis.findings.append(Finding(
                "VERIFY_BLOCKED", "error", "database",
                f"verify could not read a table within 3 s: "
                f"{(exc.diag.message_primary or str(exc)).strip()}; another session holds "
                f"an exclusive lock.",
                "see the LOCK_BLOCKING / LONG_TRANSACTION findings; end or wait for that "
                "session, then run doctor again"))
    finally:
        conn.close()
    if env.app_url:
        with progress.step(f"app: {env.app_url}/health/ready") as step:
            diagnosis.findings += _app_findings(env, app_check)
            step.note("ready" if not any(f.code == "APP_NOT_READY" for f in diagnosis.findings)
                      else "not ready")
    return diagnosis


def _threshold(long_transaction: str) -> float:
    try:
        return parse_duration(str(long_transaction))
    except ValueError:
        raise ConfigError(f"--long-transaction {long_transaction!r}: not a duration "
                          f"(e.g. 30s, 500ms, 5min).") from None


# --- the checks ---------------------------------------------------------------------------

def _connection_findings(conn: psycopg.Connection, diagnosis: Diagnosis) -> list[Finding]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(database.query("doctor/connections")).fetchone()
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
        rows = cur.execute(database.query("doctor/sessions")).fetchall()
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
    from shipshape import pipeline

    try:
        (app_check or pipeline.check_app_ready)(env.app_url)
    except ProblemsFound as exc:
        return [Finding("APP_NOT_READY", "error", f"app {env.app_url}", redact(exc.message),
                        "fix the database findings first; if there are none, read the "
                        "app's logs and its /health/ready checks")]
    return []


# --- grouping by runbook ------------------------------------------------------------------

@dataclass
class Group:
    """Findings that one runbook fixes (runbook None: no runbook fixes them)."""

    runbook: object | None  # shipshape.runbooks.Runbook
    findings: list[Finding]
    command: str = ""


def group(findings: list[Finding], runbooks: list, *, command=None) -> list[Group]:
    """Findings by the runbook that fixes them, in the order to run them; the findings
    that no runbook fixes come last. Each finding gets its runbook's id."""
    from shipshape import runbooks as runbooks_

    owners = runbooks_.assign(findings, runbooks)
    groups: dict[str | None, Group] = {}
    by_id = {r.id: r for r in runbooks}
    for finding, owner in zip(findings, owners, strict=True):
        key = owner.id if owner else None
        if key not in groups:
            groups[key] = Group(by_id.get(key), [],
                                command(by_id[key]) if (command and key) else "")
        groups[key].findings.append(dataclasses.replace(finding, runbook=key))
    ordered = sorted((g for k, g in groups.items() if k is not None),
                     key=lambda g: (g.runbook.priority, g.runbook.id))
    if None in groups:
        ordered.append(groups[None])
    return ordered


def tagged(groups: list[Group]) -> list[Finding]:
    """Every finding, with its runbook set, in group order."""
    return [f for g in groups for f in g.findings]


# --- output ---------------------------------------------------------------------------------

_MARK = {"error": "✗", "warning": "!"}


def render_text(diagnosis: Diagnosis, groups: list[Group]) -> str:
    """Doctor's report for a terminal: one block per runbook, with the command to run."""
    lines = [f"doctor: {diagnosis.target}"]
    if not diagnosis.findings:
        lines.append("✓ healthy: every check passed.")
        return "\n".join(lines) + "\n"
    errors = len(diagnosis.errors)
    warnings = len(diagnosis.findings) - errors
    state = "✓ healthy" if diagnosis.healthy else "✗ not healthy"
    lines.append(f"{state}: {errors} problem(s), {warnings} warning(s), grouped by the "
                 f"runbook that fixes them (run them in this order):")
    if diagnosis.target.endswith("from --dsn)"):
        lines.append("(add the same --dsn to each command: it is never printed, it may hold "
                     "a password)")
    for number, g in enumerate(groups, 1):
        lines.append("")
        if g.runbook is None:
            lines.append(f"{number}. no runbook fixes these: follow each fix, or escalate")
        else:
            lines.append(f"{number}. {g.runbook.id}: {g.runbook.title}")
            lines.append(f"   run: {g.command}")
        for f in g.findings:
            lines.append(f"   {_MARK.get(f.severity, f.severity)} {f.code}  {f.object}")
            lines.append(f"       {f.message}")
            if g.runbook is None:
                lines.append(f"       fix: {f.fix}")
    return redact("\n".join(lines)) + "\n"


def as_json(diagnosis: Diagnosis, groups: list[Group]) -> dict:
    return {
        "target": diagnosis.target,
        "healthy": diagnosis.healthy,
        "server_version": diagnosis.server_version,
        "findings": tagged(groups),
        "runbooks": [{"id": g.runbook.id, "title": g.runbook.title, "command": g.command,
                      "findings": g.findings} for g in groups if g.runbook is not None],
        "unmatched": next((g.findings for g in groups if g.runbook is None), []),
    }
