"""Triage: which runbook fixes which finding, in which order, and how doctor says so.

Doctor finds; triage routes. Kept apart so that doctor knows nothing of runbooks and
the runbooks can call doctor: dependencies run one way, runbooks -> doctor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from shipshape.engine.findings import Finding
from shipshape.ops.doctor import Diagnosis
from shipshape.ops.runbooks.book import Runbook, assign
from shipshape.secrets import redact


@dataclass
class Group:
    """Findings that one runbook fixes (runbook None: no runbook fixes them)."""

    runbook: Runbook | None
    findings: list[Finding]
    command: str = ""


def group(findings: list[Finding], runbooks: list, *, command=None) -> list[Group]:
    """Findings by the runbook that fixes them, in the order to run them; the findings
    that no runbook fixes come last. Each finding gets its runbook's id."""
    owners = assign(findings, runbooks)
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
        "ignored": diagnosis.ignored,
    }
