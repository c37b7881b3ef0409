"""Runbooks: the troubleshooting guide as code that runs.

A runbook is runbooks/<id>.yaml: the incident class it fixes (title, summary, symptoms),
the finding codes that detect it, ordered steps, the findings that must be gone
afterwards, and when to escalate. Every step is one of shipshape's own operations, a step
kind (STEP_KINDS): migrate, seed, baseline, rollback, a named data fix from sql/fixes/,
reapply or restore what the migrations define, terminate a blocking session. A step never
carries SQL of its own: a fix is a reviewed template in the SQL tree, and restore takes
its definitions from a shadow database built from the same migrations.

``run`` is detect -> plan (with the exact SQL) -> confirm -> steps in order -> verify ->
report. Its state lives in the database (shipshape.runbook_runs / runbook_steps): a step
recorded as done is never applied again, and a rerun resumes after the last step that
succeeded. Each run that changes something or escalates writes a Markdown and a JSON
incident report under reports/.

The package, a module per concept:

- book.py: the runbook as data (Runbook, Step, Matcher), which runbook fixes which
  finding (assign) and the command that runs it
- loading.py: reading and validating runbooks/*.yaml against the schema
- steps/: one module per step kind (its arguments, docs, plan and run); STEP_KINDS
- running.py: the run, phase by phase; confirmation.py: who must confirm, and how;
  run_state.py: its state in the database (resume); result.py: RunResult
- display.py: the plan and the result as text for the terminal
- incident_reports.py: the Markdown and JSON incident reports
- guide.py: docs/runbooks.md, rendered from the runbooks and the step kinds
"""

from shipshape.ops.runbooks.book import Matcher, Runbook, Step, assign, command, get
from shipshape.ops.runbooks.display import final_message, render_plan, render_result
from shipshape.ops.runbooks.guide import DOCS_PATH, render_book, render_docs
from shipshape.ops.runbooks.incident_reports import write_reports
from shipshape.ops.runbooks.loading import (
    FIELDS,
    REQUIRED,
    RUNBOOKS_DIR,
    STEP_FIELDS,
    default_dir,
    load,
)
from shipshape.ops.runbooks.result import RunResult
from shipshape.ops.runbooks.running import run
from shipshape.ops.runbooks.steps import FIXES_DIR, STEP_KINDS, Arg, PlannedStep, StepKind
from shipshape.paths import reports_root

__all__ = [
    "DOCS_PATH", "FIELDS", "FIXES_DIR", "REQUIRED", "RUNBOOKS_DIR", "STEP_FIELDS", "STEP_KINDS",
    "Arg", "Matcher", "PlannedStep", "RunResult", "Runbook", "Step", "StepKind", "assign",
    "command", "default_dir", "final_message", "get", "load", "render_book", "render_docs", "render_plan",
    "render_result", "reports_root", "run", "write_reports",
]
