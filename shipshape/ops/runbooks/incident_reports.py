"""The incident report each run that changed something or escalated leaves:
reports/<UTC time>-<runbook>-<env>[-run<id>].md and .json, redacted. The timeline, the
findings before and after, each step's SQL, sha256, duration and result, the rows a fix
changed, the operator and the reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from shipshape.ops.runbooks.result import RunResult
from shipshape.ops.runbooks.steps import PlannedStep
from shipshape.paths import reports_root
from shipshape.secrets import redact
from shipshape.text import one_line


def write_reports(result: RunResult, reports_dir: Path | str | None = None) -> None:
    """The report's .md and .json, beside any of the same second (never over them);
    result gets their paths and its finished_at."""
    from shipshape.text import to_jsonable

    result.finished_at = datetime.now(UTC)
    directory = reports_root(reports_dir)
    directory.mkdir(parents=True, exist_ok=True)
    stem = (f"{result.started_at:%Y%m%dT%H%M%SZ}-{result.runbook}-{result.env}"
            + (f"-run{result.run_id}" if result.run_id else ""))
    base, n = directory / stem, 1
    while base.with_suffix(".json").exists():
        n += 1
        base = directory / f"{stem}-{n}"
    result.report_md, result.report_json = base.with_suffix(".md"), base.with_suffix(".json")
    result.event(f"report written: {result.report_md.name}")
    document = to_jsonable(result.as_dict())
    result.report_json.write_text(redact(json.dumps(document, indent=2, default=str)) + "\n")
    result.report_md.write_text(redact(_markdown(result)))


def _markdown(r: RunResult) -> str:
    lines = _header(r)
    lines += ["## Timeline", ""]
    lines += [f"- {at:%H:%M:%S.%f}"[:-3] + f" {text}" for at, text in r.timeline]
    lines += ["", "## Findings before", ""] + _findings_md(r.findings_before)
    lines += ["", "## Steps", "", "| # | step | operation | status | duration | SQL sha256 |",
              "|---|---|---|---|---|---|"]
    for s in r.steps:
        lines.append(f"| {s.position} | {s.step.id} | {s.step.do} | {s.status} | "
                     f"{s.duration_ms} ms | `{s.sha256 or '-'}` |")
    for s in r.steps:
        lines += _step_md(s)
    lines += ["", "## Findings after", ""]
    lines += _findings_md(r.findings_after) if r.outcome in ("fixed", "unresolved") else [
        "(not verified: the run did not complete)"]
    return "\n".join(lines + _escalation_md(r)) + "\n"


def _header(r: RunResult) -> list[str]:
    lines = [f"# Incident report: {r.title}", "",
             "| | |", "|---|---|",
             f"| runbook | `{r.runbook}` |", f"| env | {r.env} |", f"| target | {r.target} |",
             f"| run | {('#' + str(r.run_id)) if r.run_id else '-'} (attempt {r.attempt}) |",
             f"| operator | {r.operator} |", f"| reason | {r.reason or '-'} |",
             f"| started | {r.started_at:%Y-%m-%d %H:%M:%S} UTC |",
             f"| finished | {r.finished_at:%Y-%m-%d %H:%M:%S} UTC |",
             f"| outcome | **{r.outcome}** (exit {r.exit_code}) |", ""]
    if r.message:
        lines += [r.message.replace("\n", " "), ""]
    return lines


def _step_md(s: PlannedStep) -> list[str]:
    lines = ["", f"### {s.position}. {s.step.id} ({s.step.do})", "", s.step.why, ""]
    lines.append(f"- result: {one_line(s.detail or s.skip or s.done_before or s.status)}")
    if s.summary:
        lines.append(f"- plan: {s.summary}")
    for item in s.left:
        lines.append(f"- left for escalation: {item}")
    if s.preview:
        lines += ["", f"Rows ({s.preview_total}):", ""] + _rows_md(s.preview)
    if s.sql:
        lines += ["", "```sql", s.sql.rstrip(), "```"]
    return lines


def _escalation_md(r: RunResult) -> list[str]:
    lines = []
    if r.outcome in ("escalated", "failed", "unresolved"):
        lines += ["", "## Escalate", ""] + [f"- {w}" for w in r.escalation]
        if r.escalate_to:
            lines.append(f"- to: {r.escalate_to}")
    if r.next:
        lines += ["", "## Next", ""] + [f"- `{c}`" for _, c in r.next]
    return lines


def _findings_md(findings: list) -> list[str]:
    if not findings:
        return ["none"]
    return [f"- **{f.code}** {f.object} "
            f"({f.severity}{', runbook ' + f.runbook if f.runbook else ''}): "
            f"{one_line(f.message)}" for f in findings]


def _rows_md(rows: list[dict]) -> list[str]:
    columns = list(rows[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(one_line(str(row[c])).replace("|", "\\|") for c in columns) + " |"
            for row in rows]
    return out
