"""What a run shows and leaves: the plan and the result as text, and the incident report
written for each run that changed something or escalated (Markdown and JSON, redacted)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shipshape.paths import reports_root
from shipshape.secrets import redact
from shipshape.text import one_line

if TYPE_CHECKING:
    from shipshape.ops.runbooks.book import Runbook
    from shipshape.ops.runbooks.running import RunResult

_MARK = {"error": "✗", "warning": "!"}
_STATUS = {"done": "✓", "skipped": "-", "already-done": "✓", "failed": "✗", "not-run": " ",
           "planned": "·"}


def render_plan(result: RunResult, book: Runbook) -> str:
    lines = [f"runbook {book.id}: {book.title}", f"target: {result.target}", "",
             f"detected ({len(result.mine)}):"]
    for f in result.mine:
        lines.append(f"  {_MARK.get(f.severity, f.severity)} {f.code}  {f.object}")
        lines.append(f"      {f.message}")
    lines += ["", f"plan ({len(result.steps)} step(s), in order):"]
    for s in result.steps:
        head = f"  {s.position}. {s.step.id} ({s.step.do}): {s.step.why}"
        lines.append(head)
        if s.done_before:
            lines.append(f"     already {s.done_before}: not applied again")
            continue
        if s.skip:
            lines.append(f"     nothing to do: {s.skip}")
        else:
            lines.append(f"     {s.summary}")
            if s.destructive:
                lines.append("     DESTRUCTIVE: deletes the rows shown below")
            if s.needs_yes:
                lines.append("     needs --yes")
            if s.preview:
                lines += ["     " + line for line in _rows_text(s.preview, s.preview_total)]
            lines.append(f"     sql (sha256 {s.sha256}):")
            lines += ["       " + line for line in s.sql.splitlines()]
        for item in s.left:
            lines.append(f"     left for escalation: {item}")
    return redact("\n".join(lines)) + "\n"


def _rows_text(rows: list[dict], total: int) -> list[str]:
    out = [f"rows ({total}):"]
    for row in rows[:20]:
        out.append("  " + ", ".join(f"{k}={v}" for k, v in row.items()))
    if total > 20:
        out.append(f"  ... and {total - 20} more (all in the report)")
    return out


def render_result(result: RunResult) -> str:
    lines = [f"{result.runbook}: {result.outcome}"]
    for s in result.steps:
        took = f" {s.duration_ms} ms" if s.status in ("done", "failed") else ""
        what = s.detail or s.skip or s.done_before or s.status
        lines.append(f"  {_STATUS.get(s.status, '?')} {s.position}. {s.step.id}{took}  "
                     f"{one_line(what)[:300]}")
    if result.message:
        lines.append(result.message)
    if result.report_md:
        lines.append(f"report: {result.report_md} (and {result.report_json.name})")
    return redact("\n".join(lines)) + "\n"


def _write_reports(result: RunResult, book: Runbook | None, reports_dir) -> None:
    """reports/<time>-<runbook>-<env>[-run<id>].md and .json; everything redacted."""
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
    result.report_md.write_text(redact(_report_markdown(result)))


def _report_markdown(r: RunResult) -> str:
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
    lines += ["## Timeline", ""]
    lines += [f"- {at:%H:%M:%S.%f}"[:-3] + f" {text}" for at, text in r.timeline]
    lines += ["", "## Findings before", ""] + _findings_md(r.findings_before)
    lines += ["", "## Steps", "", "| # | step | operation | status | duration | SQL sha256 |",
              "|---|---|---|---|---|---|"]
    for s in r.steps:
        lines.append(f"| {s.position} | {s.step.id} | {s.step.do} | {s.status} | "
                     f"{s.duration_ms} ms | `{s.sha256 or '-'}` |")
    for s in r.steps:
        lines += ["", f"### {s.position}. {s.step.id} ({s.step.do})", "", s.step.why, ""]
        lines.append(f"- result: {one_line(s.detail or s.skip or s.done_before or s.status)}")
        if s.summary:
            lines.append(f"- plan: {s.summary}")
        for item in s.left:
            lines.append(f"- left for escalation: {item}")
        if s.preview:
            lines += ["", f"Rows ({s.preview_total}):", ""] + _rows_md(s.preview)
        if s.sql:
            lines += ["", "```sql", s.sql.rstrip(), "```"]
    lines += ["", "## Findings after", ""]
    lines += _findings_md(r.findings_after) if r.outcome in ("fixed", "unresolved") else [
        "(not verified: the run did not complete)"]
    if r.outcome in ("escalated", "failed", "unresolved"):
        lines += ["", "## Escalate", ""] + [f"- {w}" for w in r.escalation]
        if r.escalate_to:
            lines.append(f"- to: {r.escalate_to}")
    if r.next:
        lines += ["", "## Next", ""] + [f"- `{c}`" for _, c in r.next]
    return "\n".join(lines) + "\n"


def _findings_md(findings: list) -> list[str]:
    if not findings:
        return ["none"]
    return [f"- **{f.code}** {f.object} ({f.severity}{', runbook ' + f.runbook if f.runbook else ''}): "
            f"{one_line(f.message)}" for f in findings]


def _rows_md(rows: list[dict]) -> list[str]:
    columns = list(rows[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(one_line(str(row[c])).replace("|", "\\|") for c in columns) + " |"
            for row in rows]
    return out
