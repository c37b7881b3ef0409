"""Runbooks: the troubleshooting guide as code that runs.

A runbook is runbooks/<id>.yaml: the incident class it fixes (title, summary, symptoms),
the finding codes that detect it, ordered steps, the findings that must be gone
afterwards, and when to escalate. Every step is one of shipshape's own operations
(OPERATIONS): migrate, seed, baseline, rollback, a named data fix from sql/fixes/,
reapply or restore what the migrations define, terminate a blocking session. A step never
carries SQL of its own: a fix is a reviewed template in the SQL tree, and restore takes
its definitions from a shadow database built from the same migrations.

``run`` is detect -> plan (with the exact SQL) -> confirm -> steps in order -> verify ->
report. Its state lives in the database (shipshape.runbook_runs / runbook_steps): a step
recorded as done is never applied again, and a rerun resumes after the last step that
succeeded. Each run that changes something or escalates writes a Markdown and a JSON
report under reports/.

The package, a module per concept:

- book.py: the runbook file: its schema (OPERATIONS), load and validate, which runbook
  fixes which finding (assign) and the command that runs it
- operations.py: each step kind's plan (its exact SQL) and run; _OPS is their table
- running.py: the run, RunResult, and its state in the database (resume)
- reports.py: the plan and the result as text; the Markdown and JSON incident reports
- guide.py: docs/runbooks.md, rendered from the runbooks
"""

from shipshape.ops.runbooks.book import (
    FIELDS,
    FIXES_DIR,
    OPERATIONS,
    REQUIRED,
    RUNBOOKS_DIR,
    STEP_FIELDS,
    Matcher,
    Runbook,
    Step,
    assign,
    command,
    default_dir,
    get,
    load,
)
from shipshape.ops.runbooks.guide import DOCS_PATH, render_book, render_docs

# `_name as _name`: private names the tests reach through the package (_OPS is the very
# table the run looks step kinds up in, so patching it here patches the run).
from shipshape.ops.runbooks.operations import _OPS as _OPS
from shipshape.ops.runbooks.operations import PlannedStep
from shipshape.ops.runbooks.operations import _plan_fix as _plan_fix
from shipshape.ops.runbooks.operations import _run_fix as _run_fix
from shipshape.ops.runbooks.reports import _write_reports as _write_reports
from shipshape.ops.runbooks.reports import render_plan, render_result
from shipshape.ops.runbooks.running import RunResult, run
from shipshape.paths import reports_root

__all__ = [
    "DOCS_PATH", "FIELDS", "FIXES_DIR", "OPERATIONS", "REQUIRED", "RUNBOOKS_DIR", "STEP_FIELDS",
    "Matcher", "PlannedStep", "RunResult", "Runbook", "Step", "assign", "command",
    "default_dir", "get", "load", "render_book", "render_docs", "render_plan", "render_result",
    "reports_root", "run",
]
