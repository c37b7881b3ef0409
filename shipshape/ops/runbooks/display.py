"""What the operator reads on the terminal: the plan before it is confirmed, and the
result of a run, as text (redacted; the tasks print it)."""

from __future__ import annotations

from shipshape.ops.runbooks.book import Runbook
from shipshape.ops.runbooks.result import RunResult
from shipshape.ops.runbooks.steps import PlannedStep
from shipshape.secrets import redact
from shipshape.text import one_line

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
        lines += _planned(s)
    return redact("\n".join(lines)) + "\n"


def _planned(s: PlannedStep) -> list[str]:
    lines = [f"  {s.position}. {s.step.id} ({s.step.do}): {s.step.why}"]
    if s.done_before:
        return lines + [f"     already {s.done_before}: not applied again"]
    if s.skip:
        lines.append(f"     nothing to do: {s.skip}")
    else:
        lines += _what_runs(s)
    return lines + [f"     left for escalation: {item}" for item in s.left]


def _what_runs(s: PlannedStep) -> list[str]:
    lines = [f"     {s.summary}"]
    if s.destructive:
        lines.append("     DESTRUCTIVE: deletes the rows shown below")
    if s.needs_yes:
        lines.append("     needs --yes")
    if s.needs_reason:
        lines.append('     needs --reason "..." (recorded in shipshape.history)')
    if s.preview:
        lines += ["     " + line for line in _rows_text(s.preview, s.preview_total)]
    lines.append(f"     sql (sha256 {s.sha256}):")
    return lines + ["       " + line for line in s.sql.splitlines()]


def _rows_text(rows: list[dict], total: int) -> list[str]:
    out = [f"rows ({total}):"]
    for row in rows[:20]:
        out.append("  " + ", ".join(f"{k}={v}" for k, v in row.items()))
    if total > 20:
        out.append(f"  ... and {total - 20} more (all in the report)")
    return out


def render_result(result: RunResult, *, message: bool = True) -> str:
    """The run's steps as they ended; with message, its final message and report too
    (the task prints those once, on stderr, and the steps on stdout)."""
    lines = [f"{result.runbook}: {result.outcome}"]
    for s in result.steps:
        took = f" {s.duration_ms} ms" if s.status in ("done", "failed") else ""
        what = s.detail or s.skip or s.done_before or s.status
        lines.append(f"  {_STATUS.get(s.status, '?')} {s.position}. {s.step.id}{took}  "
                     f"{one_line(what)[:300]}")
    if message:
        lines += final_message(result).splitlines()
    return redact("\n".join(lines)) + "\n"


def final_message(result: RunResult) -> str:
    """The one paragraph that ends a run: what happened, what to run next, the report."""
    lines = [result.message] if result.message else []
    if result.report_md:
        lines.append(f"report: {result.report_md} (and {result.report_json.name})")
    return redact("\n".join(lines))
