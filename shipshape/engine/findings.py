"""Findings: what verify and doctor report, and the one table of their codes.

A finding names what is wrong (code, object), how bad it is (severity), what was seen
(message) and what fixes it (fix); doctor then sets the runbook that fixes it. Runbooks
may only name codes from CODES (their schema checks it), and docs/runbooks.md lists them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]

CODES: dict[str, str] = {
    "MIGRATION_PENDING": "a migration in the code is not applied to the database",
    "MIGRATION_FAILED": "a migration's history row says it failed part-way (success = false)",
    "MIGRATION_CHECKSUM": "an applied migration's file was changed after it ran",
    "MIGRATION_RENDERED_OTHERWISE": "an applied migration, unchanged, renders differently for "
                                    "the env's settings now than when it ran",
    "MIGRATION_UNKNOWN": "the database has applied a migration that this code does not contain",
    "DRIFT_MISSING": "an object that the applied migrations create is missing",
    "DRIFT_UNEXPECTED": "an object exists that no applied migration creates",
    "DRIFT_CHANGED": "an object differs from what the applied migrations create",
    "SEED_TABLE_MISSING": "a seed file's table or columns do not exist",
    "SEED_MISSING": "declared seed rows are missing",
    "SEED_DIFFERS": "declared seed rows hold other values",
    "CHECK_FAILED": "a data check (sql/checks/) found violating rows",
    "CHECK_ERROR": "a data check could not run (usually: the schema is incomplete)",
    "ENV_MISMATCH": "the database is stamped with another environment than --env",
    "DB_UNREACHABLE": "the database does not accept a connection",
    "DB_READ_ONLY": "the database is a standby in recovery: it refuses writes",
    "CONNECTIONS_NEAR_LIMIT": "the server is close to max_connections",
    "LOCK_BLOCKING": "a session holds locks that other sessions are waiting for",
    "LONG_TRANSACTION": "a session has held locks on application tables for too long",
    "VERIFY_BLOCKED": "verify could not read a table: a lock held by another session",
    "APP_NOT_READY": "the app's /health/ready does not answer 200",
    "SHADOW_LEFTOVER": "a scratch database or server of a killed shadow build is left over",
}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    object: str
    message: str
    fix: str
    runbook: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)
