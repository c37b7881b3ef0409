"""Triage: which runbook fixes which finding, in which order, and how doctor says so.

Doctor finds; triage routes. Kept apart so that doctor knows nothing of runbooks and
the runbooks can call doctor: dependencies run one way, runbooks -> doctor.

`route` is the one place that decides the next command from a set of findings: deploy's
exit-2 message, db.verify, doctor and runbook.run all ask it, so that no two messages
point at each other (issue 11: drift sent people from deploy to deploy).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from shipshape.engine.findings import Finding
from shipshape.ops.doctor import Diagnosis
from shipshape.ops.runbooks.book import Runbook, assign
from shipshape.ops.runbooks.book import command as runbook_command
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


@dataclass(frozen=True)
class Route:
    """The one command to run next, and the runbook it runs (None: no runbook fixes the
    findings, and the command is doctor, which lists each finding's own fix)."""

    command: str
    runbook: Runbook | None = None


def route(findings: list[Finding], env_name: str, *, runbooks: list | None = None,
          runbooks_dir=None, command=None) -> Route | None:
    """The next command for these findings: the first runbook (in doctor's order) that
    fixes any of them, else `invoke doctor`. None when no finding is an error.

    runbooks: already loaded, else read from runbooks_dir (default runbooks/); command(book):
    how to spell a runbook's command, with the flags to repeat (default: `invoke
    runbook.run <id> --env <env_name>`). Routing never hides the error it serves: runbooks
    that do not load send the reader to doctor, which reports why."""
    if not any(f.severity == "error" for f in findings):
        return None
    if runbooks is None:
        from shipshape.errors import ConfigError
        from shipshape.ops.runbooks.loading import load

        try:
            # no sql_dir: routing needs no fix template (another SQL tree may have none)
            runbooks = load(runbooks_dir)
        except ConfigError:
            return Route(f"invoke doctor --env {env_name}")
    if command is None:
        def command(book):
            return runbook_command(book, env_name)
    errors = [f for f in findings if f.severity == "error"]
    return first_route(group(errors, runbooks, command=command), env_name)


def first_route(groups: list[Group], env_name: str) -> Route:
    """The route for findings already grouped (doctor has the groups): the first group
    that a runbook fixes."""
    first = next((g for g in groups if g.runbook is not None), None)
    if first is None:
        return Route(f"invoke doctor --env {env_name}")
    return Route(first.command, first.runbook)


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
