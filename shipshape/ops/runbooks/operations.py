"""The step kinds: for each operation, how it is planned (its exact SQL, computed
read-only) and how it runs. _OPS maps each kind to its (plan, run) pair.

A plan function fills a PlannedStep (its sql and summary, or skip and why); one whose
step changes the history records that in ctx.history, so the steps after it are planned
against the history they will see. A run function applies what was planned and returns
what it did, in one line.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from shipshape.errors import ConfigError, Refused
from shipshape.ops.runbooks.book import FIXES_DIR
from shipshape.settings import Environment
from shipshape.targets import Target
from shipshape.text import listing, one_line

if TYPE_CHECKING:
    from shipshape.ops.runbooks.book import Runbook, Step


@dataclass
class PlannedStep:
    """One step of a run: what it will do (its exact SQL), then what it did."""

    step: Step
    position: int
    sql: str = ""
    summary: str = ""
    skip: str = ""  # non-empty: nothing to do, and why
    left: list[str] = field(default_factory=list)  # what this step leaves for escalation
    preview: list[dict] = field(default_factory=list)  # rows a fix changes, sessions ended
    preview_total: int = 0
    needs_yes: bool = False
    destructive: bool = False
    data: dict = field(default_factory=dict, repr=False)
    done_before: str = ""  # resume: done by an earlier attempt of the same run
    status: str = "planned"  # planned | done | skipped | already-done | failed | not-run
    started_at: datetime | None = None
    duration_ms: int = 0
    detail: str = ""

    @property
    def sha256(self) -> str | None:
        from shipshape.engine.migrations import sha256

        return sha256(self.sql) if self.sql else None

    def as_dict(self) -> dict:
        return {"id": self.step.id, "do": self.step.do, "why": self.step.why,
                "position": self.position, "status": self.status, "summary": self.summary,
                "skip": self.skip, "left": self.left, "sql": self.sql,
                "sql_sha256": self.sha256, "destructive": self.destructive,
                "needs_yes": self.needs_yes, "preview_total": self.preview_total,
                "preview": self.preview, "started_at": self.started_at,
                "duration_ms": self.duration_ms, "detail": self.detail,
                "done_before": self.done_before}


@dataclass
class _Ctx:
    book: Runbook
    target: Target
    sql_dir: Path
    conn: object  # psycopg.Connection
    renderer: object
    loaded: list
    diagnosis: object
    history: dict  # projected while planning: what the history will be when the step runs
    progress: object
    operator: str
    record: object = None  # callable(planned, status): write the step row on conn
    rerun: str = ""  # the command that resumes this run
    # projected while planning, like history: what an earlier step (reapply) creates again,
    # as snapshot sections ({section: {name: definition, or None when it drops it}}) taken
    # from the shadow database, so that the steps after it are planned against the schema
    # they will see
    recreated: dict = field(default_factory=dict)

    @property
    def env(self) -> Environment:
        return self.target.env


def _fresh_history(ctx: _Ctx) -> dict:
    from shipshape.engine import migrations

    return migrations.read_history(ctx.conn)


def _applied(ctx: _Ctx, history: dict) -> list:
    return [m for m in ctx.loaded if m.version in history and history[m.version]["success"]]


def _actual(ctx: _Ctx) -> dict:
    from shipshape.engine import catalog

    return catalog.snapshot(ctx.conn)


def _projected(ctx: _Ctx) -> dict:
    """The live schema as the steps planned so far leave it (see _Ctx.recreated)."""
    snap = {section: dict(objects) for section, objects in _actual(ctx).items()}
    for section, objects in ctx.recreated.items():
        for name, value in objects.items():
            if value is None:
                snap.setdefault(section, {}).pop(name, None)
            else:
                snap.setdefault(section, {})[name] = value
    return snap


def _expected(ctx: _Ctx, applied: list | None = None) -> dict:
    """The schema the recorded migrations create (a shadow database's snapshot)."""
    from shipshape.engine import verify

    if applied is None:
        applied = _applied(ctx, _fresh_history(ctx))
    return verify.shadow_snapshot(ctx.target, applied, ctx.progress)


def _projected_row(migration, applied_by: str) -> dict:
    from shipshape.engine.history import projected

    return projected(migration, applied_by=applied_by)


def _migration_blocks(todo, what: str = "") -> str:
    parts = []
    for m in todo:
        mode = "transaction" if m.transactional else "no transaction"
        parts.append(f"-- ==== {what}{m.name} ({mode}{', destructive' if m.destructive else ''}) "
                     f"====\n{m.sql.strip()}\n-- + its row in shipshape.history, in the same "
                     f"{'transaction' if m.transactional else 'session'}")
    return "\n\n".join(parts)


def _plan_migrate(ctx: _Ctx, planned: PlannedStep) -> None:
    from shipshape.engine import migrations

    retry = planned.step.arg("retry_failed")
    entries = migrations.status(ctx.loaded, ctx.history)
    migrations.refuse_unsafe(entries, ctx.loaded, retry_failed=retry)
    todo = migrations.plan(ctx.loaded, ctx.history)
    if not todo:
        planned.skip = "no pending migration"
        return
    migrations.refuse_destructive(ctx.env, todo, rollback=False)
    planned.sql = _migration_blocks(todo)
    failed = [m.name for m in todo if m.version in ctx.history]
    planned.summary = (f"apply {len(todo)} migration(s): {', '.join(m.name for m in todo)}"
                       + (f" (re-running {', '.join(failed)}, recorded as failed)" if failed else ""))
    planned.data = {"versions": [m.version for m in todo]}
    for m in todo:
        ctx.history[m.version] = _projected_row(m, "migrate")


def _run_migrate(ctx: _Ctx, planned: PlannedStep) -> str:
    from shipshape.engine import migrations

    _, applied = migrations.migrate(ctx.conn, ctx.env, ctx.loaded, progress=ctx.progress,
                                    retry_failed=planned.step.arg("retry_failed"))
    return f"{len(applied)} migration(s) applied: {', '.join(m.name for m in applied)}"


def _plan_seed(ctx: _Ctx, planned: PlannedStep) -> None:
    from shipshape.engine import seeds

    declared = seeds.load(ctx.sql_dir, ctx.env)
    if not declared:
        planned.skip = "no seed file applies to this env"
        return
    planned.sql = seeds.script(declared, env=ctx.env)
    rows = sum(len(s.rows) for s in declared)
    planned.summary = (f"upsert {rows} declared row(s) of {len(declared)} seed file(s) "
                       f"({', '.join(s.path.name for s in declared)}); nothing is deleted")
    planned.data = {"declared": declared}


def _run_seed(ctx: _Ctx, planned: PlannedStep) -> str:
    from shipshape.engine import seeds

    results = seeds.apply(ctx.conn, ctx.env, planned.data["declared"])
    return (f"{sum(r.inserted for r in results)} inserted, {sum(r.updated for r in results)} "
            f"updated, {sum(r.unchanged for r in results)} unchanged")


def _plan_baseline(ctx: _Ctx, planned: PlannedStep) -> None:
    from shipshape.engine import catalog, migrations, verify
    from shipshape.engine.history import record_sql

    wanted = planned.step.arg("version")
    history = ctx.history
    current = migrations.current_version(history) or 0
    if wanted == "auto":
        actual = _actual(ctx)
        expected_now = verify.shadow_snapshot(ctx.target, _applied(ctx, history), ctx.progress)
        if not [d for d in catalog.diff(expected_now, actual) if d.change == "unexpected"]:
            planned.skip = "no object outside the recorded migrations: nothing to adopt"
            return
        version = _matching_version(ctx, history, current, actual)
    else:
        version = int(wanted)
        if version not in {m.version for m in ctx.loaded}:
            raise ConfigError(f"{ctx.book.path}: steps: baseline version {version}: no "
                              f"migration has version {version:04d}.")
    adopted = [m for m in ctx.loaded if m.version <= version and m.version not in history]
    if not adopted:
        planned.skip = f"migrations up to {version:04d} are already recorded"
        return
    planned.summary = (f"record {', '.join(m.name for m in adopted)} as applied: the schema "
                       f"equals what migrations 0001..{version:04d} produce")
    inserts = [record_sql(ctx.conn, m, applied_by=f"baseline by runbook {ctx.book.id}")
               for m in adopted]
    planned.sql = (f"-- proven first: a shadow database built from migrations 0001..{version:04d} "
                   f"has exactly this database's schema\n" + ";\n".join(inserts) + ";")
    planned.data = {"version": version}
    for m in adopted:
        ctx.history[m.version] = _projected_row(m, "baseline")


def _matching_version(ctx: _Ctx, history: dict, current: int, actual: dict) -> int:
    """The highest version N whose migrations 0001..N produce exactly the live schema."""
    from shipshape.engine import catalog, verify

    closest = None
    for version in sorted((m.version for m in ctx.loaded if m.version > current), reverse=True):
        expected = verify.shadow_snapshot(
            ctx.target, [m for m in ctx.loaded if m.version <= version], ctx.progress)
        differences = catalog.diff(expected, actual)
        if not differences:
            return version
        if closest is None or len(differences) < len(closest[1]):
            closest = (version, differences)
    if closest is None:
        unexpected = [d.describe() for d in catalog.diff(
            verify.shadow_snapshot(ctx.target, _applied(ctx, history), ctx.progress), actual)
            if d.change == "unexpected"]
        raise Refused(
            "Refusing to baseline: every migration is already recorded, so no migration "
            "creates these objects. Write a migration that creates them (reviewed, then "
            "deployed) or one that drops them:", details=unexpected[:20])
    version, differences = closest
    raise Refused(
        f"Refusing to baseline: the schema is not what any migrations 0001..N produce, so "
        f"the hand-made objects cannot be adopted as they are. Closest: 0001..{version:04d}, "
        f"with {len(differences)} difference(s); nothing was recorded:",
        details=[d.describe() for d in differences[:20]]
        + ([f"and {len(differences) - 20} more"] if len(differences) > 20 else []))


def _run_baseline(ctx: _Ctx, planned: PlannedStep) -> str:
    from shipshape.engine import baseline, migrations

    version = planned.data["version"]
    if not migrations.read_history(ctx.conn):
        adopted = baseline.baseline(ctx.conn, ctx.target, ctx.loaded, version,
                                    progress=ctx.progress)
    else:
        adopted = _adopt(ctx, version)
    return f"recorded {len(adopted)} migration(s) up to {version:04d} after proving the schema"


def _adopt(ctx: _Ctx, version: int) -> list:
    """baseline for a database that has a history: record the unrecorded migrations up to
    version, only after proving the schema equals what 0001..version produce."""
    from shipshape.engine import catalog, migrations, verify
    from shipshape.engine.history import record

    conn = ctx.conn
    history = migrations.read_history(conn)
    migrations.refuse_unsafe(migrations.status(ctx.loaded, history), ctx.loaded)
    above = sorted(v for v in history if v > version)
    if above:
        raise Refused(f"Refusing to baseline at {version:04d}: migrations above it are "
                      f"recorded ({', '.join(f'{v:04d}' for v in above)}).")
    adopted = [m for m in ctx.loaded if m.version <= version]
    expected = verify.shadow_snapshot(ctx.target, adopted, ctx.progress)
    differences = catalog.diff(expected, catalog.snapshot(conn))
    if differences:
        raise Refused(f"Refusing to baseline at {version:04d}: the schema is not what "
                      f"migrations 0001..{version:04d} produce:",
                      details=[d.describe() for d in differences])
    todo = [m for m in adopted if m.version not in history]
    with conn.transaction():
        for m in todo:
            record(conn, m, applied_by=f"baseline by runbook {ctx.book.id} by {ctx.operator}")
    return todo


# The objects reapply re-creates, and the snapshot section that holds each kind.
_CREATED = {"table": "tables", "column": "columns"}


def _created(snap: dict, before: dict, expected: dict) -> list[tuple[str, str]]:
    """The tables and columns in snap but not in before (one migration's, when they are
    the shadow snapshots of consecutive prefixes) that the recorded migrations still have."""
    return sorted((kind, name) for kind, section in _CREATED.items()
                  for name in (snap.get(section) or {})
                  if name not in (before.get(section) or {}) and name in (expected.get(section) or {}))


def _folded(objects: list[tuple[str, str]]) -> list[str]:
    """`kind name` for each object, the columns of a listed table left out."""
    tables = {name for kind, name in objects if kind == "table"}
    return [f"{kind} {name}" for kind, name in objects
            if kind == "table" or name.rsplit(".", 1)[0] not in tables]


def _plan_reapply(ctx: _Ctx, planned: PlannedStep) -> None:
    """Re-run a recorded migration only when every table and column it creates is missing:
    re-running one whose objects partly exist would fail on the first that does (its SQL
    has no IF NOT EXISTS, on purpose). Missing columns of such a migration are restore's."""
    ctx.recreated.clear()  # mutated, not replaced: the run plans on copies of ctx
    applied = _applied(ctx, _fresh_history(ctx))
    expected = _expected(ctx, applied)
    actual = _actual(ctx)
    absent = {(kind, name) for kind, section in _CREATED.items()
              for name in (expected.get(section) or {}) if name not in (actual.get(section) or {})}
    if not absent:
        planned.skip = "no table or column of an applied migration is missing"
        return
    # Each missing object belongs to the first migration whose shadow snapshot has it; what
    # a migration creates is the difference between its prefix's snapshot and the one before.
    owners: list[tuple[object, list[tuple[str, str]], dict, dict]] = []
    unowned = set(absent)
    before: dict = {}
    for i, m in enumerate(applied, 1):
        if not unowned:
            break
        snap = _expected(ctx, applied[:i])
        mine = {o for o in unowned if o[1] in (snap.get(_CREATED[o[0]]) or {})}
        if mine:
            owners.append((m, _created(snap, before, expected), snap, before))
            unowned -= mine
        before = snap
    todo, partial = [], []
    for m, created, snap, before in owners:
        missing = [o for o in created if o in absent]
        if missing and len(missing) == len(created):
            todo.append((m, created, snap, before))
        else:
            partial.append(
                f"{m.name} is not re-run: {len(missing)} of the {len(created)} tables and "
                f"columns it creates {'is' if len(missing) == 1 else 'are'} missing "
                f"({listing(_folded(missing))}) and its SQL would fail on those that exist")
    not_run = ("; ".join(partial) + " (restore adds a missing column back from the shadow "
               "database's definition)") if partial else ""
    if not todo:
        planned.skip = not_run or "no recorded migration creates the missing tables and columns"
        return
    for m, *_ in todo:
        if not m.transactional or m.destructive:
            raise Refused(
                f"{m.name} created missing objects but cannot be re-run safely "
                f"({'it is not transactional' if not m.transactional else 'it is destructive'}); "
                f"restore its objects through a new migration.")
    planned.sql = _migration_blocks([m for m, *_ in todo], "re-run ")
    planned.summary = "; ".join(
        f"re-run {m.name}: {listing(_folded(created))} missing" for m, created, *_ in todo) + (
        f"; {not_run}" if not_run else "")
    planned.data = {"versions": [m.version for m, *_ in todo]}
    if planned.done_before:
        return  # done in an earlier attempt: it does not run again
    # What re-running them changes, in order: each one's objects as its shadow prefix has them.
    for _, _, snap, before in todo:
        for section in snap.keys() | before.keys():
            mine, theirs = snap.get(section) or {}, before.get(section) or {}
            for name in mine.keys() | theirs.keys():
                if mine.get(name) != theirs.get(name):
                    ctx.recreated.setdefault(section, {})[name] = mine.get(name)


def _run_reapply(ctx: _Ctx, planned: PlannedStep) -> str:
    from shipshape.engine import migrations

    by_version = {m.version: m for m in ctx.loaded}
    done = []
    for version in planned.data["versions"]:
        m = by_version[version]
        with ctx.progress.step(f"re-run {m.name}") as step:
            step.note(f"{migrations.apply(ctx.conn, ctx.env, m, applied_by=f'runbook {ctx.book.id} by {ctx.operator}')} ms")
        done.append(m.name)
    return f"re-ran {', '.join(done)}"


def _plan_restore(ctx: _Ctx, planned: PlannedStep) -> None:
    from shipshape.engine import catalog

    expected = _expected(ctx)
    differences = catalog.diff(expected, _projected(ctx))
    statements: list[tuple[int, str, bool]] = []  # (order, sql, transactional)
    gone: set[tuple[str, str | None]] = set()  # (table, column or None) that stay missing
    # Missing tables and plain columns first: an index, a constraint or a generated column
    # that needs one of them which stays missing cannot be built, and is left with it.
    first, then = [], []
    for d in differences:
        plain = d.change == "missing" and (
            d.kind == "table" or (d.kind == "column" and not d.expected.get("generated")))
        (first if plain else then).append(d)
    for d in first + then:
        needs = _needs(d, gone)
        if needs:
            statements_for, why_left = [], f"it needs {needs}, which stays missing"
        else:
            statements_for, why_left = _restore_statements(ctx, d, expected)
        if why_left:
            planned.left.append(f"{d.describe()} ({why_left})")
            if d.change == "missing" and d.kind == "table":
                gone.add((d.name, None))
            elif d.change == "missing" and d.kind == "column":
                gone.add((d.expected["table"], d.name[len(d.expected["table"]) + 1:]))
        statements += statements_for
    if not statements:
        planned.skip = "nothing that restore can rebuild"
        return
    # Columns (0, generated ones 3) before defaults and NOT NULL (1, 2), constraints
    # (10-15), indexes (20, 21) and grants (30, 31): what needs a column comes after it.
    statements.sort(key=lambda s: s[0])
    planned.sql = "\n".join(s + ";" for _, s, _ in statements)
    planned.summary = f"{len(statements)} statement(s) rebuilding what the migrations define"
    planned.data = {"statements": [(s, t) for _, s, t in statements]}


def _mentions(text: str, name: str) -> bool:
    """Whether catalog text (pg_get_indexdef, pg_get_constraintdef, pg_get_expr) names the
    identifier `name`: quoted, or bare when it needs no quotes. Errs on the side of yes."""
    if '"' + name.replace('"', '""') + '"' in text:
        return True
    return bool(re.fullmatch(r"[a-z_][a-z0-9_$]*", name)) and re.search(
        rf'(?<![\w$"]){re.escape(name)}(?![\w$"])', text) is not None


def _needs(d, gone: set[tuple[str, str | None]]) -> str:
    """The table or column that stays missing which the object of d is built on, if any."""
    if not gone or d.change not in ("missing", "changed") or not isinstance(d.expected, dict):
        return ""
    table = d.expected.get("table")
    if d.kind == "column":
        own, ref = d.expected.get("generated") or "", None
    elif d.kind == "index":
        own, ref = d.expected["definition"].split(" USING ", 1)[-1], None
    elif d.kind == "constraint":
        own, _, rest = d.expected["definition"].partition(" REFERENCES ")
        ref = re.match(r"\s*(.+?)\((.*?)\)", rest) if rest else None
    else:
        return ""
    ref_table = ".".join(part.strip('"') for part in ref.group(1).split(".")) if ref else None
    for gone_table, column in sorted(gone, key=lambda g: (g[0], g[1] or "")):
        if column is None:
            if gone_table == ref_table:
                return f"table {gone_table}"
        elif (gone_table == table and _mentions(own, column)) or (
                gone_table == ref_table and _mentions(ref.group(2), column)):
            return f"column {gone_table}.{column}"
    return ""


def _has_rows(ctx: _Ctx, table: str) -> bool:
    """Whether table has a row: read-only, within the env's timeouts. A table that an
    earlier step creates again (it is not there yet) has none."""
    import psycopg
    from psycopg import sql

    from shipshape import db

    statement = sql.SQL(_template("runbook/table_has_rows")).format(
        table=db.identifier(table))

    def work():
        try:
            with ctx.conn.transaction(force_rollback=True):
                db.set_local_timeouts(ctx.conn, ctx.env)
                return ctx.conn.execute(statement).fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return False

    return db.retry_on_lock_timeout(ctx.conn, ctx.env, work,
                                          what=f"Planning restore (whether {table} has rows)",
                                          then="run the runbook again; nothing was changed.")


def _collation(ctx: _Ctx, name: str):
    """The collation a snapshot names (unqualified in pg_catalog and public), as an
    identifier, or None when this database has no such collation for its encoding."""
    from psycopg import sql

    with ctx.conn.transaction(force_rollback=True):
        row = ctx.conn.execute(_template("runbook/collation"), {"name": name}).fetchone()
    return sql.Identifier(*row) if row else None


def _restore_column(ctx: _Ctx, d, expected: dict) -> tuple[list[tuple[int, str, bool]], str]:
    """ALTER TABLE ... ADD COLUMN for a column missing from a table that exists, exactly as
    the shadow database has it; or why it is left: restore never invents a value for a row."""
    from psycopg import sql

    from shipshape.db import identifier

    column = d.expected
    table = column["table"]
    name = d.name[len(table) + 1:]
    if column.get("identity"):
        return [], (f"an identity column (generated {column['identity']}): adding it back "
                    f"numbers every row from a new sequence; write a migration")
    owned = [s for s, v in (expected.get("sequences") or {}).items()
             if v.get("table") == table and v.get("column") == name]
    if owned:
        return [], (f"its values come from sequence {owned[0]}, which it owns (serial) and "
                    f"restore does not rebuild; write a migration")
    parts = [sql.SQL(column["type"])]
    if column.get("collation"):
        collation = _collation(ctx, column["collation"])
        if collation is None:
            return [], f"its collation {column['collation']} does not exist in this database"
        parts.append(sql.SQL("COLLATE {}").format(collation))
    if column.get("generated"):  # computed from the row: nothing is invented
        expression, _, stored = column["generated"].rpartition(" ")
        parts.append(sql.SQL("GENERATED ALWAYS AS ({}) {}").format(
            sql.SQL(expression), sql.SQL(stored)))
    elif column.get("default") is not None:  # each row gets it, as when the migration ran
        parts.append(sql.SQL("DEFAULT {}").format(sql.SQL(column["default"])))
    if not column["nullable"]:
        if column.get("default") is None and not column.get("generated") and _has_rows(ctx, table):
            return [], (f"it is NOT NULL without a default and {table} has rows: adding it "
                        f"back needs a value for each of them, and restore never invents "
                        f"data; a reviewed migration must supply them")
        parts.append(sql.SQL("NOT NULL"))
    statement = sql.SQL(_template("runbook/restore_column_add")).format(
        table=identifier(table), column=sql.Identifier(name),
        definition=sql.SQL(" ").join(parts)).as_string(ctx.conn)
    return [(3 if column.get("generated") else 0, statement, True)], ""


_CONSTRAINT_ORDER = {"PRIMARY KEY": 10, "UNIQUE": 11, "EXCLUDE": 12, "CHECK": 13, "FOREIGN KEY": 14}


def _restore_statements(ctx: _Ctx, d, expected: dict) -> tuple[list[tuple[int, str, bool]], str]:
    """The statements that rebuild one difference, or why restore leaves it. expected:
    the shadow database's snapshot that d comes from."""
    from psycopg import sql

    from shipshape.db import identifier

    conn = ctx.conn

    def text(template: str, **parts) -> str:
        return sql.SQL(_template(template)).format(**parts).as_string(conn)

    if d.kind == "index" and d.change in ("missing", "changed"):
        concurrent = ctx.env.concurrent_indexes
        out = []
        if d.change == "changed":
            out.append((20, text("runbook/restore_index_drop",
                                 concurrently=sql.SQL("CONCURRENTLY " if concurrent else ""),
                                 name=identifier(d.name)), not concurrent))
        definition = d.expected["definition"]
        if concurrent:
            definition = re.sub(r"^CREATE (UNIQUE )?INDEX ", r"CREATE \1INDEX CONCURRENTLY ",
                                definition)
        out.append((21, definition, not concurrent))
        return out, ""
    if d.kind == "constraint" and d.change in ("missing", "changed"):
        table = d.expected["table"]
        name = d.name[len(table) + 1:]
        return [(_CONSTRAINT_ORDER.get(d.expected["type"], 15), text(
            "runbook/restore_constraint", table=identifier(table), name=sql.Identifier(name),
            definition=sql.SQL(d.expected["definition"])), True)], ""
    if d.kind == "column" and d.change == "changed":
        expected, actual = d.expected, d.actual
        other = [k for k in ("type", "identity", "generated", "collation")
                 if expected.get(k) != actual.get(k)]
        if other:
            return [], f"its {', '.join(other)} differs: changing it may rewrite or lose data"
        table = expected["table"]
        column = sql.Identifier(d.name[len(table) + 1:])
        out = []
        if expected["default"] != actual["default"]:
            if expected["default"] is None:
                out.append((1, text("runbook/restore_column_drop_default",
                                    table=identifier(table), column=column), True))
            else:
                out.append((1, text("runbook/restore_column_set_default", table=identifier(table),
                                    column=column, default=sql.SQL(expected["default"])), True))
        if expected["nullable"] != actual["nullable"]:
            out.append((2, text("runbook/restore_column_not_null", table=identifier(table),
                                column=column,
                                action=sql.SQL("DROP" if expected["nullable"] else "SET")), True))
        return out, ""
    if d.kind == "grant" and d.change in ("missing", "changed"):
        expected = d.expected or {}
        actual = d.actual or {}
        out = []
        for grantee in sorted(set(expected) | set(actual)):
            want, have = expected.get(grantee, []), actual.get(grantee, [])
            if sorted(want) == sorted(have):
                continue
            if any("GRANT OPTION" in p for p in want):
                return [], "it includes WITH GRANT OPTION"
            who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
            out.append((30, text("runbook/restore_revoke", table=identifier(d.name),
                                 grantee=who), True))
            if want:
                out.append((31, text("runbook/restore_grant", table=identifier(d.name),
                                     grantee=who, privileges=sql.SQL(", ").join(
                                         sql.SQL(p) for p in sorted(want))), True))
        return out, ""
    if d.kind == "column" and d.change == "missing":
        return _restore_column(ctx, d, expected)
    if d.kind == "table" and d.change == "missing":
        return [], ("restore does not create tables: reapply re-runs the migration that "
                    "creates it when every table and column of that migration is missing; "
                    "otherwise write a migration")
    if d.change == "unexpected":
        return [], "no migration creates it: adopt it in a migration, or drop it in one"
    return [], "restore does not rebuild this kind of object: write a migration"


def _run_restore(ctx: _Ctx, planned: PlannedStep) -> str:
    import psycopg

    from shipshape import db
    from shipshape.errors import SQLFailed

    conn = ctx.conn
    statements = planned.data["statements"]
    in_tx = [s for s, t in statements if t]
    outside = [s for s, t in statements if not t]
    current = {"sql": ""}

    def work():
        with conn.transaction():
            db.set_local_timeouts(conn, ctx.env)
            for statement in in_tx:
                current["sql"] = statement
                conn.execute(statement)
            if not outside:
                ctx.record(planned, "done")

    try:
        if in_tx:
            db.retry_on_lock_timeout(conn, ctx.env, work, what=f"Step {planned.step.id}",
                                           then="run the runbook again; nothing of this step "
                                                "was applied.")
        if outside:
            with db.autocommit(conn, ctx.env):
                for statement in outside:
                    current["sql"] = statement
                    conn.execute(statement)
    except psycopg.errors.LockNotAvailable:  # a CONCURRENTLY statement, outside the retries
        from shipshape.errors import Busy

        raise Busy(f"Step {planned.step.id} could not get its locks within lock_timeout="
                   f"{ctx.env.lock_timeout} at `{one_line(current['sql'])[:200]}`; blocking: "
                   f"{db.describe_holders(db.table_lock_holders(conn))}. An index "
                   f"it was building may be left INVALID (doctor shows it); run the runbook "
                   f"again when they are gone.") from None
    except psycopg.Error as exc:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        raise SQLFailed(
            f"Step {planned.step.id} failed at `{one_line(current['sql'])[:200]}`: "
            f"{db.server_message(exc)}. Its transaction was rolled back: nothing of this step was "
            f"applied. Rows that violate it must be fixed first (see the CHECK_FAILED "
            f"findings and runbook data-integrity).") from None
    return f"{len(statements)} statement(s) applied"


def _fix_path(ctx: _Ctx, planned: PlannedStep) -> Path:
    path = ctx.sql_dir / FIXES_DIR / f"{planned.step.arg('name')}.sql.j2"
    if not path.is_file():
        raise ConfigError(f"{ctx.book.path}: steps[{planned.position - 1}].name: no fix {path}.")
    return path


def _plan_fix(ctx: _Ctx, planned: PlannedStep) -> None:
    import psycopg

    from shipshape import db
    from shipshape.engine import migrations
    from shipshape.engine.render import directives
    from shipshape.errors import SQLFailed

    path = _fix_path(ctx, planned)
    preview_sql = "\n".join(
        line for line in ctx.renderer.render(path, preview=True).splitlines()
        if line.strip() and not line.lstrip().startswith("--")).strip().rstrip(";").strip()
    change_sql = ctx.renderer.render(path, preview=False).strip()
    found = directives(change_sql)
    hits = migrations.destructive_statements(change_sql)
    declared = "destructive" in found
    if hits and not declared:
        raise Refused(f"{path} contains destructive SQL ({'; '.join(hits[:3])}) but does not "
                      f"declare `-- shipshape:destructive`; shipshape never runs undeclared "
                      f"destructive SQL.")
    if declared != bool(planned.step.arg("destructive")):
        raise ConfigError(
            f"{ctx.book.path}: steps[{planned.position - 1}].destructive: the fix "
            f"{path.name} is {'' if declared else 'not '}destructive, so the step must say "
            f"`destructive: {'true' if declared else 'false'}`: a runbook deletes only what "
            f"it says it deletes.")
    if len(migrations.split(change_sql)) != 1:
        raise ConfigError(f"{path}: a fix is one statement (its row count is checked against "
                          f"the rows its preview shows), found {len(migrations.split(change_sql))}.")
    try:
        with ctx.conn.transaction(force_rollback=True):
            cur = ctx.conn.execute(preview_sql)
            columns = [c.name for c in cur.description or []]
            rows = cur.fetchall()
    except psycopg.Error as exc:
        raise SQLFailed(f"The preview of {path} could not run: "
                        f"{db.server_message(exc, detail=False)}. Nothing was "
                        f"changed; the schema is probably incomplete (run `invoke doctor`).") from None
    if not rows:
        planned.skip = "its preview finds no row to change"
        return
    planned.preview_total = len(rows)
    planned.preview = [{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows[:200]]
    header = dict(re.findall(r"^--\s*(description):\s*(.+?)\s*$", change_sql, re.MULTILINE))
    planned.destructive = declared
    planned.summary = (f"{header.get('description', path.name)}: {len(rows)} row(s), shown "
                       f"below; it must change exactly these")
    planned.sql = (f"-- preview: the rows it changes ({len(rows)})\n{preview_sql};\n\n"
                   f"{change_sql.rstrip().rstrip(';')};")
    planned.data = {"change": change_sql, "count": len(rows), "path": str(path)}


def _run_fix(ctx: _Ctx, planned: PlannedStep) -> str:
    import psycopg

    from shipshape import db
    from shipshape.errors import SQLFailed

    conn = ctx.conn
    expected = planned.data["count"]

    class _Changed(Exception):
        pass

    def work():
        with conn.transaction():
            db.set_local_timeouts(conn, ctx.env)
            cur = conn.execute(planned.data["change"])
            if cur.rowcount != expected:
                raise _Changed(cur.rowcount)
            ctx.record(planned, "done")
        return cur.rowcount

    try:
        count = db.retry_on_lock_timeout(conn, ctx.env, work, what=f"Step {planned.step.id}",
                                               then="run the runbook again; nothing of this "
                                                    "step was applied.")
    except _Changed as exc:
        raise Refused(f"Step {planned.step.id}: the fix would change {exc.args[0]} row(s), but "
                      f"the plan showed {expected}: the data changed since. It was rolled back "
                      f"(nothing changed); run the runbook again to see the rows now.") from None
    except psycopg.errors.LockNotAvailable:
        raise
    except psycopg.Error as exc:
        raise SQLFailed(f"Step {planned.step.id} ({planned.data['path']}) failed: "
                        f"{db.server_message(exc, detail=False)}. It was rolled back: "
                        f"nothing of it was applied.") from None
    return f"{count} row(s) changed, as shown"


def _plan_terminate(ctx: _Ctx, planned: PlannedStep) -> None:
    pids = []
    for f in ctx.diagnosis.findings:
        if f.code in ("LOCK_BLOCKING", "LONG_TRANSACTION"):
            pid = int(f.object.rsplit(" ", 1)[-1])
            if pid not in pids:
                pids.append(pid)
    sessions = [ctx.diagnosis.sessions[p] for p in pids if p in ctx.diagnosis.sessions]
    for s in sessions:
        if s.is_shipshape:
            planned.left.append(f"{s.describe()} is a shipshape run: wait for it to finish, "
                                f"or stop that command")
    sessions = [s for s in sessions if not s.is_shipshape]
    if not sessions:
        planned.skip = "no blocking session to end"
        return
    planned.needs_yes = True
    planned.preview_total = len(sessions)
    planned.preview = [{"pid": s.pid, "application_name": s.application_name,
                        "user": s.usename, "state": s.state,
                        "transaction_open_since": s.xact_start, "locks": s.locks,
                        "blocking": s.blocking, "query": s.query} for s in sessions]
    planned.sql = "\n".join(
        f"-- {s.describe()}, transaction open since {s.xact_start:%Y-%m-%d %H:%M:%S %Z}\n"
        + _mogrify(ctx.conn, "runbook/terminate", {"pid": s.pid,
                                                   "backend_start": s.backend_start}) + ";"
        for s in sessions)
    planned.summary = (f"end {', '.join(f'pid {s.pid}' for s in sessions)}: "
                       f"{'; '.join(s.describe() for s in sessions)}")
    planned.data = {"sessions": sessions}


def _run_terminate(ctx: _Ctx, planned: PlannedStep) -> str:
    import psycopg

    from shipshape import db

    conn = ctx.conn
    ended, gone = [], []
    for s in planned.data["sessions"]:
        params = {"pid": s.pid, "backend_start": s.backend_start}
        try:
            row = conn.execute(db.query("runbook/terminate"), params).fetchone()
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            raise Refused(f"Cannot end pid {s.pid}: "
                          f"{db.server_message(exc, detail=False)}. The "
                          f"migration role needs pg_signal_backend (or ask a DBA to end it)."
                          + (f" Already ended: pid {', '.join(map(str, ended))}." if ended else "")
                          ) from None
        if not row:
            gone.append(s.pid)
            continue
        deadline = time.monotonic() + 10
        while conn.execute(db.query("runbook/session_alive"), params).fetchone()[0]:
            conn.commit()
            if time.monotonic() > deadline:
                raise Refused(f"pid {s.pid} did not end within 10 s of pg_terminate_backend.")
            time.sleep(0.05)
        conn.commit()
        ended.append(s.pid)
    return (f"ended pid {', '.join(map(str, ended))}" if ended else "nothing ended") + (
        f"; already gone: pid {', '.join(map(str, gone))}" if gone else "")


def _plan_rollback(ctx: _Ctx, planned: PlannedStep) -> None:
    from shipshape.engine import bundle, migrations

    to = planned.step.arg("to")
    todo = migrations.rollback_plan(ctx.loaded, ctx.history, to)
    if not todo:
        planned.skip = f"nothing applied above {to:04d}"
        return
    destructive = any(m.rollback_destructive for m in todo)
    if destructive != bool(planned.step.arg("destructive")):
        raise ConfigError(
            f"{ctx.book.path}: steps[{planned.position - 1}].destructive: the rollback of "
            f"{', '.join(m.name for m in todo)} is {'' if destructive else 'not '}destructive, "
            f"so the step must say `destructive: {'true' if destructive else 'false'}`.")
    migrations.refuse_destructive(ctx.env, todo, rollback=True)
    planned.destructive = destructive
    planned.sql = bundle.rollback_script(ctx.renderer, todo)
    planned.summary = f"roll back {', '.join(m.name for m in todo)}"
    planned.data = {"to": to}
    for m in todo:
        ctx.history.pop(m.version, None)


def _run_rollback(ctx: _Ctx, planned: PlannedStep) -> str:
    from shipshape.engine import migrations

    done = migrations.rollback(ctx.conn, ctx.env, ctx.loaded, planned.data["to"],
                               progress=ctx.progress)
    return f"rolled back {', '.join(m.name for m in done)}"


_OPS = {
    "migrate": (_plan_migrate, _run_migrate),
    "seed": (_plan_seed, _run_seed),
    "baseline": (_plan_baseline, _run_baseline),
    "rollback": (_plan_rollback, _run_rollback),
    "fix": (_plan_fix, _run_fix),
    "reapply": (_plan_reapply, _run_reapply),
    "restore": (_plan_restore, _run_restore),
    "terminate": (_plan_terminate, _run_terminate),
}
# Ops whose plan is their own guard at run time: a fix's row count must equal the rows
# shown, a session is ended only if it is the one shown (pid and start time).
_GUARDED = {"fix", "terminate"}


@cache
def _template(name: str) -> str:
    """A shipshape/sql/<name>.sql statement without its comment lines."""
    from shipshape.db import query

    return "\n".join(line for line in query(name).splitlines()
                     if not line.lstrip().startswith("--")).strip()


def _mogrify(conn, name: str, params: dict) -> str:
    """A query of shipshape/sql with its parameters as literals: the exact SQL, for a plan."""
    import psycopg

    return psycopg.ClientCursor(conn).mogrify(_template(name), params)


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)
