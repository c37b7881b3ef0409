"""fix: a named data fix, sql/fixes/<name>.sql.j2, a reviewed template of the SQL tree.

Rendered with `preview` true it is a SELECT of the rows it changes, shown in the plan;
with `preview` false it is one statement, which must change exactly as many rows as were
shown, and records the step in its own transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipshape.errors import ConfigError, Refused
from shipshape.ops.runbooks.book import Step
from shipshape.ops.runbooks.steps.base import Arg, Context, PlannedStep, StepKind

FIXES_DIR = "fixes"
NAME = Arg("name", "name", required=True)
DESTRUCTIVE = Arg("destructive", "bool", default=False)


@dataclass(frozen=True)
class FixPlan:
    change: str  # the one statement that changes the rows
    count: int  # the rows its preview showed: it must change exactly as many
    path: Path


def template_path(sql_dir: Path, name: str) -> Path:
    return sql_dir / FIXES_DIR / f"{name}.sql.j2"


def check(args: Mapping[str, object], sql_dir: Path) -> dict[str, str]:
    """The fix a step names must exist in the SQL tree."""
    template = template_path(sql_dir, str(args[NAME.name]))
    return {} if template.is_file() else {NAME.name: f"no fix {template}"}


def sources(step: Step, sql_dir: Path) -> list[Path]:
    return [template_path(sql_dir, NAME.of(step))]


def plan(ctx: Context, planned: PlannedStep[FixPlan]) -> None:
    path = _template(ctx, planned)
    preview_sql = "\n".join(
        line for line in ctx.renderer.render(path, preview=True).splitlines()
        if line.strip() and not line.lstrip().startswith("--")).strip().rstrip(";").strip()
    change_sql = ctx.renderer.render(path, preview=False).strip()
    declared = _check_change(ctx, planned, path, change_sql)
    columns, rows = _preview_rows(ctx, path, preview_sql)
    if not rows:
        planned.skip = "its preview finds no row to change"
        return
    planned.preview_total = len(rows)
    planned.preview = [{c: _plain(v) for c, v in zip(columns, row, strict=True)}
                       for row in rows[:200]]
    header = dict(re.findall(r"^--\s*(description):\s*(.+?)\s*$", change_sql, re.MULTILINE))
    planned.destructive = declared
    planned.summary = (f"{header.get('description', path.name)}: {len(rows)} row(s), shown "
                       f"below; it must change exactly these")
    planned.sql = (f"-- preview: the rows it changes ({len(rows)})\n{preview_sql};\n\n"
                   f"{change_sql.rstrip().rstrip(';')};")
    planned.data = FixPlan(change=change_sql, count=len(rows), path=path)


def _template(ctx: Context, planned: PlannedStep) -> Path:
    path = template_path(ctx.sql_dir, NAME.of(planned.step))
    if not path.is_file():
        raise ConfigError(f"{ctx.book.path}: steps[{planned.position - 1}].name: no fix {path}.")
    return path


def _check_change(ctx: Context, planned: PlannedStep, path: Path, change_sql: str) -> bool:
    """Whether the change is destructive, after checking that it says so exactly when it
    is, that the step says the same, and that it is one statement."""
    from shipshape.engine import sqlparse
    from shipshape.engine.render import directives

    declared = "destructive" in directives(change_sql)
    try:
        hits = sqlparse.destructive_lines(change_sql)
    except sqlparse.SQLSyntaxError as exc:
        raise ConfigError(f"{path}: not valid PostgreSQL ({exc}); fix the template and run "
                          f"the runbook again.") from None
    if hits and not declared:
        raise Refused(f"{path} contains destructive SQL ({'; '.join(hits[:3])}) but does not "
                      f"declare `-- shipshape:destructive`; shipshape never runs undeclared "
                      f"destructive SQL.")
    if declared != bool(DESTRUCTIVE.of(planned.step)):
        raise ConfigError(
            f"{ctx.book.path}: steps[{planned.position - 1}].destructive: the fix "
            f"{path.name} is {'' if declared else 'not '}destructive, so the step must say "
            f"`destructive: {'true' if declared else 'false'}`: a runbook deletes only what "
            f"it says it deletes.")
    statements = len(sqlparse.split(change_sql))
    if statements != 1:
        raise ConfigError(f"{path}: a fix is one statement (its row count is checked against "
                          f"the rows its preview shows), found {statements}.")
    return declared


def _preview_rows(ctx: Context, path: Path, preview_sql: str) -> tuple[list[str], list[tuple]]:
    """The preview's columns and rows, read in a transaction that is rolled back."""
    import psycopg

    from shipshape import db
    from shipshape.errors import SQLFailed

    try:
        with ctx.conn.transaction(force_rollback=True):
            cur = ctx.conn.execute(preview_sql)
            return [c.name for c in cur.description or []], cur.fetchall()
    except psycopg.Error as exc:
        reason = db.server_message(exc, detail=False)
        raise SQLFailed(f"The preview of {path} could not run: {reason}. Nothing was changed; "
                        f"the schema is probably incomplete (run `invoke doctor`).") from None


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


class _RowCountChanged(Exception):
    """The change would touch another number of rows than the plan showed."""


def run(ctx: Context, planned: PlannedStep[FixPlan]) -> str:
    import psycopg

    from shipshape import db
    from shipshape.errors import SQLFailed

    conn, fix = ctx.conn, planned.plan

    def work():
        with conn.transaction():
            db.set_local_timeouts(conn, ctx.env)
            cur = conn.execute(fix.change)
            if cur.rowcount != fix.count:
                raise _RowCountChanged(cur.rowcount)
            ctx.record(planned, "done")
        return cur.rowcount

    try:
        count = db.retry_on_lock_timeout(conn, ctx.env, work, what=f"Step {planned.step.id}",
                                         then="run the runbook again; nothing of this "
                                              "step was applied.")
    except _RowCountChanged as exc:
        raise Refused(f"Step {planned.step.id}: the fix would change {exc.args[0]} row(s), but "
                      f"the plan showed {fix.count}: the data changed since. It was rolled back "
                      f"(nothing changed); run the runbook again to see the rows now.") from None
    except psycopg.errors.LockNotAvailable:
        raise
    except psycopg.Error as exc:
        reason = db.server_message(exc, detail=False)
        raise SQLFailed(f"Step {planned.step.id} ({fix.path}) failed: {reason}. It "
                        f"was rolled back: nothing of it was applied.") from None
    return f"{count} row(s) changed, as shown"


FIX = StepKind(
    "fix", plan=plan, run=run, args=(NAME, DESTRUCTIVE), guards_itself=True,
    check=check, sources=sources,
    doc="a named data fix, sql/fixes/<name>.sql.j2: its preview (the rows it "
        "changes) is shown first, and it must change exactly those rows",
)
