"""RunResult: a runbook run as it goes, what the task prints and the report records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from shipshape.ops.runbooks.steps import PlannedStep
from shipshape.secrets import redact


@dataclass
class RunResult:
    runbook: str
    title: str
    env: str
    target: str
    operator: str
    reason: str | None
    started_at: datetime
    outcome: str = "planned"  # nothing-to-do | elsewhere | dry-run | refused | escalated |
    #                           failed | fixed | unresolved
    exit_code: int = 0
    message: str = ""
    run_id: int | None = None
    attempt: int = 1
    finished_at: datetime | None = None
    findings_before: list = field(default_factory=list)
    findings_after: list = field(default_factory=list)
    mine: list = field(default_factory=list)
    steps: list[PlannedStep] = field(default_factory=list)
    timeline: list[tuple[datetime, str]] = field(default_factory=list)
    escalation: list[str] = field(default_factory=list)
    escalate_to: str = ""
    next: list[tuple[str, str]] = field(default_factory=list)  # (runbook id, command)
    report_md: Path | None = None
    report_json: Path | None = None

    def event(self, text: str) -> None:
        self.timeline.append((datetime.now(UTC), redact(text)))

    def as_dict(self) -> dict:
        return {
            "runbook": self.runbook, "title": self.title, "env": self.env,
            "target": self.target, "operator": self.operator, "reason": self.reason,
            "run_id": self.run_id, "attempt": self.attempt, "outcome": self.outcome,
            "exit_code": self.exit_code, "message": self.message,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "timeline": [{"at": at, "event": text} for at, text in self.timeline],
            "findings_before": self.findings_before, "findings_after": self.findings_after,
            "steps": [s.as_dict() for s in self.steps],
            "escalation": {"when": self.escalation, "to": self.escalate_to},
            "next": [{"runbook": r, "command": c} for r, c in self.next],
            "report": {"markdown": self.report_md, "json": self.report_json},
        }
