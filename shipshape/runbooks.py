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
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import yaml

from shipshape.environments import Environment, Target, redact
from shipshape.errors import ConfigError, ProblemsFound, Refused, ShipshapeError

RUNBOOKS_DIR = "runbooks"
FIXES_DIR = "fixes"
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")

# --- the schema -----------------------------------------------------------------------------

# Each operation: its arguments (name -> (kind, required, default)) and what it does, for
# the docs. Kinds: "bool", "int", "version" (an int or "auto"), "name" (a fix file).
OPERATIONS: dict[str, dict] = {
    "migrate": {
        "args": {"retry_failed": ("bool", False, False)},
        "doc": "apply the pending migrations with their own SQL, each in its own "
               "transaction with its history row (`invoke db.migrate`); with "
               "`retry_failed`, re-run a migration whose history row says it failed",
    },
    "seed": {
        "args": {},
        "doc": "upsert the env's declared seed rows (`invoke db.seed`); inserts and "
               "updates, never deletes",
    },
    "baseline": {
        "args": {"version": ("version", False, "auto")},
        "doc": "record hand-made migrations as applied, only after proving in a shadow "
               "database that the schema equals what migrations 0001..N produce "
               "(`invoke db.baseline`); `version: auto` picks the highest N that matches",
    },
    "rollback": {
        "args": {"to": ("int", True, None), "destructive": ("bool", False, False)},
        "doc": "roll back the migrations above `to` with their rollback files "
               "(`invoke db.rollback`)",
    },
    "fix": {
        "args": {"name": ("name", True, None), "destructive": ("bool", False, False)},
        "doc": "a named data fix, sql/fixes/<name>.sql.j2: its preview (the rows it "
               "changes) is shown first, and it must change exactly those rows",
    },
    "reapply": {
        "args": {},
        "doc": "re-run, with its own SQL, each applied migration whose tables or columns "
               "are missing (the history says applied, the objects are not there); the "
               "migration fails loudly and changes nothing if any of its objects exist",
    },
    "restore": {
        "args": {},
        "doc": "rebuild drifted indexes, constraints (e.g. an FK without ON DELETE "
               "CASCADE), column NOT NULL/defaults and grants exactly as the migrations "
               "define them, taking each definition from a shadow database built from "
               "the same migrations; never drops a table, a column or a row",
    },
    "terminate": {
        "args": {},
        "doc": "end the sessions named by LOCK_BLOCKING / LONG_TRANSACTION findings "
               "(`pg_terminate_backend` of exactly the pids in the plan; always needs "
               "--yes); their open transactions roll back",
    },
}

FIELDS = ("id", "title", "summary", "incidents", "priority", "symptoms", "detects",
          "also_clears", "steps", "verify", "escalate")
REQUIRED = ("id", "title", "summary", "priority", "symptoms", "detects", "steps", "escalate")
STEP_FIELDS = ("id", "do", "why")


@dataclass(frozen=True)
class Matcher:
    """`CODE` or `CODE object-glob`: matches findings by code, and by object (fnmatch)."""

    code: str
    pattern: str | None = None

    def matches(self, finding) -> bool:
        return finding.code == self.code and (
            self.pattern is None or fnmatch.fnmatchcase(finding.object, self.pattern))

    def __str__(self) -> str:
        return self.code + (f" {self.pattern}" if self.pattern else "")


@dataclass(frozen=True)
class Step:
    id: str
    do: str
    why: str
    args: dict = field(default_factory=dict, hash=False, compare=False)

    def arg(self, name: str):
        return self.args.get(name, OPERATIONS[self.do]["args"][name][2])


@dataclass(frozen=True)
class Runbook:
    id: str
    title: str
    summary: str
    priority: int
    symptoms: tuple[str, ...]
    detects: tuple[Matcher, ...]
    also_clears: tuple[Matcher, ...]
    steps: tuple[Step, ...]
    verify_absent: tuple[Matcher, ...]
    verify_why: str
    escalate_when: tuple[str, ...]
    escalate_to: str
    incidents: tuple[str, ...] = ()
    path: Path | None = None

    def triggered_by(self, finding) -> bool:
        return any(m.matches(finding) for m in self.detects)

    def clears(self, finding) -> bool:
        return self.triggered_by(finding) or any(m.matches(finding) for m in self.also_clears)

    @property
    def escalate_only(self) -> bool:
        return not self.steps


def default_dir() -> Path:
    from shipshape.environments import project_root

    return project_root() / RUNBOOKS_DIR


def load(directory: Path | str | None = None, *, sql_dir: Path | str | None = None) -> list[Runbook]:
    """Every runbook in directory, validated; ConfigError (exit 5) naming file and field.

    With sql_dir, each fix step's template must exist in sql_dir/fixes/.
    """
    from shipshape.doctor import CODES

    directory = Path(directory) if directory else default_dir()
    if not directory.is_dir():
        raise ConfigError(f"No runbooks directory at {directory}. Point --runbooks-dir at a "
                          f"directory of <id>.yaml files.")
    paths = sorted(p for p in directory.iterdir()
                   if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith("."))
    runbooks, problems = [], []
    for path in paths:
        book, found = _parse(path, CODES, Path(sql_dir) if sql_dir else None)
        problems += found
        if book is not None:
            runbooks.append(book)
    seen: dict[str, Path] = {}
    for book in runbooks:
        if book.id in seen:
            problems.append(f"{book.path}: id: {book.id!r} is also the id of {seen[book.id]}")
        seen.setdefault(book.id, book.path)
    if not runbooks and not problems:
        problems.append(f"{directory}: no runbook files (*.yaml)")
    if problems:
        if len(problems) == 1:
            raise ConfigError(f"{problems[0]}. Fix the runbook; `invoke runbook.list` "
                              f"validates them all.")
        raise ConfigError(f"The runbooks have {len(problems)} problems. Fix them; "
                          f"`invoke runbook.list` validates them all.", details=problems)
    return sorted(runbooks, key=lambda b: (b.priority, b.id))


def get(runbooks: list[Runbook], name: str) -> Runbook:
    for book in runbooks:
        if book.id == name:
            return book
    raise ConfigError(f"Unknown runbook {name!r}. The runbooks are: "
                      f"{', '.join(b.id for b in runbooks)} (`invoke runbook.list`).")


class _Loader(yaml.SafeLoader):
    """SafeLoader that remembers each mapping's line, and refuses duplicate keys."""


class _Mapping(dict):
    line: int | None = None


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Mapping:
    mapping = _Mapping()
    mapping.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found an unhashable key",
                key_node.start_mark)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"found duplicate key {key!r}", key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse(path: Path, codes: dict, sql_dir: Path | None) -> tuple[Runbook | None, list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot be read ({exc})"]
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        return None, [f"{where}: not valid YAML: {exc.problem or exc.context or 'syntax error'}"]
    except yaml.YAMLError as exc:
        return None, [f"{path}: not valid YAML: {exc}"]
    problems: list[str] = []

    def problem(where: str, message: str, node=None) -> None:
        line = getattr(node, "line", None)
        problems.append(f"{path}: {where}: {message}" + (f" (line {line})" if line else ""))

    if not isinstance(doc, dict):
        return None, [f"{path}: expected a mapping with the fields {', '.join(REQUIRED)}"]
    for name in doc:
        if name not in FIELDS:
            problem(str(name), f"unknown field; the fields are {', '.join(FIELDS)}", doc)
    for name in REQUIRED:
        if name not in doc:
            problem(name, "missing required field", doc)

    book_id = doc.get("id")
    if "id" in doc:
        if not isinstance(book_id, str) or not _ID.match(book_id):
            problem("id", f"must be lower-case letters, digits and dashes, got {book_id!r}", doc)
        elif book_id != path.stem:
            problem("id", f"{book_id!r} must equal the file name ({path.stem!r})", doc)
    title = _text(doc, "title", problem)
    summary = _text(doc, "summary", problem)
    priority = doc.get("priority")
    if "priority" in doc and (not isinstance(priority, int) or isinstance(priority, bool)):
        problem("priority", f"must be an integer (lower runs first), got {priority!r}", doc)
    symptoms = _texts(doc, "symptoms", problem, required=True)
    incidents = _texts(doc, "incidents", problem, required=False)
    detects = _matchers(doc, "detects", codes, problem, required=True)
    also = _matchers(doc, "also_clears", codes, problem, required=False)
    steps = _steps(doc, problem, sql_dir)

    verify_doc = doc.get("verify")
    absent, verify_why = (), ""
    if verify_doc is None:
        if steps or (isinstance(doc.get("steps"), list) and doc["steps"]):
            problem("verify", "required when the runbook has steps: `absent` lists the "
                              "finding codes that must be gone afterwards", doc)
    elif not isinstance(verify_doc, dict):
        problem("verify", "must be a mapping with `absent` (finding codes) and `why`", doc)
    else:
        for name in verify_doc:
            if name not in ("absent", "why"):
                problem(f"verify.{name}", "unknown field; the fields are absent, why", verify_doc)
        absent = _matchers(verify_doc, "absent", codes, problem, required=True, prefix="verify.")
        verify_why = _text(verify_doc, "why", problem, prefix="verify.", required=False)

    esc = doc.get("escalate")
    when, to = (), ""
    if "escalate" in doc:
        if not isinstance(esc, dict):
            problem("escalate", "must be a mapping with `when` (a list) and `to`", doc)
        else:
            for name in esc:
                if name not in ("when", "to"):
                    problem(f"escalate.{name}", "unknown field; the fields are when, to", esc)
            when = _texts(esc, "when", problem, required=True, prefix="escalate.")
            to = _text(esc, "to", problem, prefix="escalate.", required=False)

    if problems:
        return None, problems
    return Runbook(id=book_id, title=title, summary=summary, priority=priority,
                   symptoms=symptoms, detects=detects, also_clears=also, steps=steps,
                   verify_absent=absent, verify_why=verify_why, escalate_when=when,
                   escalate_to=to, incidents=incidents, path=path), []


def _text(doc: dict, name: str, problem, *, prefix: str = "", required: bool = True) -> str:
    value = doc.get(name)
    if name not in doc:
        return ""
    if not isinstance(value, str) or not value.strip():
        problem(prefix + name, f"must be non-empty text, got {value!r}", doc)
        return ""
    return " ".join(value.split())


def _texts(doc: dict, name: str, problem, *, required: bool, prefix: str = "") -> tuple[str, ...]:
    if name not in doc:
        return ()
    value = doc[name]
    if not isinstance(value, list) or (required and not value):
        problem(prefix + name, f"must be a {'non-empty ' if required else ''}list of text", doc)
        return ()
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            problem(f"{prefix}{name}[{i}]", f"must be non-empty text, got {item!r}", doc)
        else:
            out.append(" ".join(item.split()))
    return tuple(out)


def _matchers(doc: dict, name: str, codes: dict, problem, *, required: bool,
              prefix: str = "") -> tuple[Matcher, ...]:
    if name not in doc:
        return ()
    value = doc[name]
    if not isinstance(value, list) or (required and not value):
        problem(prefix + name, "must be a non-empty list of finding codes (e.g. SEED_MISSING, "
                               "or `CHECK_FAILED check orphaned_avatars`)", doc)
        return ()
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            problem(f"{prefix}{name}[{i}]", f"must be a finding code, got {item!r}", doc)
            continue
        code, _, pattern = item.strip().partition(" ")
        if code not in codes:
            problem(f"{prefix}{name}[{i}]", f"unknown finding code {code!r}; the codes are "
                                            f"{', '.join(codes)}", doc)
            continue
        out.append(Matcher(code, pattern.strip() or None))
    return tuple(out)


def _steps(doc: dict, problem, sql_dir: Path | None) -> tuple[Step, ...]:
    if "steps" not in doc:
        return ()
    value = doc["steps"]
    if not isinstance(value, list):
        problem("steps", "must be a list of steps (empty for a runbook that only escalates)", doc)
        return ()
    steps, ids = [], set()
    for i, raw in enumerate(value):
        where = f"steps[{i}]"
        if not isinstance(raw, dict):
            problem(where, f"must be a mapping with id, do, why; got {raw!r}")
            continue
        good = True
        for name in STEP_FIELDS:
            if name not in raw:
                problem(where, f"missing required field {name!r}", raw)
                good = False
        step_id, op, why = raw.get("id"), raw.get("do"), raw.get("why")
        if "id" in raw and (not isinstance(step_id, str) or not _ID.match(step_id)):
            problem(f"{where}.id", f"must be lower-case letters, digits and dashes, got {step_id!r}", raw)
            good = False
        elif step_id in ids:
            problem(f"{where}.id", f"{step_id!r} is used by another step", raw)
            good = False
        ids.add(step_id)
        if "why" in raw and (not isinstance(why, str) or not why.strip()):
            problem(f"{where}.why", f"must be non-empty text, got {why!r}", raw)
            good = False
        if "do" in raw and op not in OPERATIONS:
            problem(f"{where}.do", f"unknown operation {op!r}; the operations are "
                                   f"{', '.join(OPERATIONS)}", raw)
            continue
        if op is None:
            continue
        spec = OPERATIONS[op]["args"]
        args = {}
        for name, arg in raw.items():
            if name in STEP_FIELDS:
                continue
            if name not in spec:
                known = ", ".join(spec) or "none"
                problem(f"{where}.{name}", f"not an argument of {op}; its arguments: {known}", raw)
                good = False
                continue
            kind = spec[name][0]
            if not _valid_arg(kind, arg):
                problem(f"{where}.{name}", f"must be {_KIND_TEXT[kind]}, got {arg!r}", raw)
                good = False
                continue
            args[name] = arg
        for name, (_, required, _) in spec.items():
            if required and name not in raw:
                problem(where, f"{op} needs {name!r}", raw)
                good = False
        if op == "fix" and good and sql_dir is not None:
            template = sql_dir / FIXES_DIR / f"{args['name']}.sql.j2"
            if not template.is_file():
                problem(f"{where}.name", f"no fix {template}", raw)
                good = False
        if good:
            steps.append(Step(step_id, op, " ".join(why.split()), args))
    return tuple(steps)


_KIND_TEXT = {"bool": "true or false", "int": "an integer", "version": "a version number or auto",
              "name": "a fix name (lower_snake, a file sql/fixes/<name>.sql.j2)"}


def _valid_arg(kind: str, value) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == "version":
        return value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
    if kind == "name":
        return isinstance(value, str) and re.fullmatch(r"[a-z0-9_]+", value) is not None
    return False


# --- which runbook fixes which finding --------------------------------------------------------

def assign(findings: list, runbooks: list[Runbook]) -> list[Runbook | None]:
    """The runbook that fixes each finding.

    A runbook is triggered when a finding matches its `detects`. Each finding goes to the
    first triggered runbook (by priority) that detects or `also_clears` it: a missing
    table's failing checks go with the migrations that create the table.
    """
    ordered = sorted(runbooks, key=lambda b: (b.priority, b.id))
    triggered = [b for b in ordered if any(b.triggered_by(f) for f in findings)]
    return [next((b for b in triggered if b.clears(f)), None) for f in findings]


def command(book: Runbook, env_name: str, *, sql_dir: Path | str | None = None,
            long_transaction: str | None = None, runbooks_dir: Path | str | None = None) -> str:
    """The exact command that runs book for this env (no DSN: it may hold a password)."""
    parts = ["invoke", "runbook.run", book.id, "--env", env_name]
    if sql_dir is not None:
        parts += ["--sql-dir", str(sql_dir)]
    if runbooks_dir is not None:
        parts += ["--runbooks-dir", str(runbooks_dir)]
    if long_transaction and any(m.code in ("LONG_TRANSACTION", "LOCK_BLOCKING")
                                for m in book.detects):
        parts += ["--long-transaction", str(long_transaction)]
    return " ".join(parts)


# --- planning: each step's exact SQL, computed read-only ------------------------------------

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
        from shipshape.migrations import sha256

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

    @property
    def env(self) -> Environment:
        return self.target.env


def _fresh_history(ctx: _Ctx) -> dict:
    from shipshape import migrations

    return migrations.read_history(ctx.conn)


def _applied(ctx: _Ctx, history: dict) -> list:
    return [m for m in ctx.loaded if m.version in history and history[m.version]["success"]]


def _actual(ctx: _Ctx) -> dict:
    from shipshape import catalog

    return catalog.snapshot(ctx.conn)


def _drift(ctx: _Ctx) -> list:
    """Differences between the schema the recorded migrations create and the live one."""
    from shipshape import catalog, verify

    expected = verify.shadow_snapshot(ctx.target, _applied(ctx, _fresh_history(ctx)), ctx.progress)
    return catalog.diff(expected, _actual(ctx))


def _projected_row(migration, applied_by: str) -> dict:
    return {"version": migration.version, "name": migration.name,
            "checksum": migration.checksum, "source_checksum": migration.source_checksum,
            "applied_at": datetime.now(UTC), "duration_ms": 0,
            "applied_by": applied_by, "success": True}


def _migration_blocks(todo, what: str = "") -> str:
    parts = []
    for m in todo:
        mode = "transaction" if m.transactional else "no transaction"
        parts.append(f"-- ==== {what}{m.name} ({mode}{', destructive' if m.destructive else ''}) "
                     f"====\n{m.sql.strip()}\n-- + its row in shipshape.history, in the same "
                     f"{'transaction' if m.transactional else 'session'}")
    return "\n\n".join(parts)


def _plan_migrate(ctx: _Ctx, planned: PlannedStep) -> None:
    from shipshape import migrations

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
    from shipshape import migrations

    _, applied = migrations.migrate(ctx.conn, ctx.env, ctx.loaded, progress=ctx.progress,
                                    retry_failed=planned.step.arg("retry_failed"))
    return f"{len(applied)} migration(s) applied: {', '.join(m.name for m in applied)}"


def _plan_seed(ctx: _Ctx, planned: PlannedStep) -> None:
    from shipshape import seeds

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
    from shipshape import seeds

    results = seeds.apply(ctx.conn, ctx.env, planned.data["declared"])
    return (f"{sum(r.inserted for r in results)} inserted, {sum(r.updated for r in results)} "
            f"updated, {sum(r.unchanged for r in results)} unchanged")


def _plan_baseline(ctx: _Ctx, planned: PlannedStep) -> None:
    from shipshape import catalog, migrations, verify

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
    inserts = [_mogrify(ctx.conn, "history_insert", {
        "version": m.version, "name": m.name, "checksum": m.checksum,
        "source_checksum": m.source_checksum, "duration_ms": 0,
        "applied_by": f"baseline by runbook {ctx.book.id}", "success": True}) for m in adopted]
    planned.sql = (f"-- proven first: a shadow database built from migrations 0001..{version:04d} "
                   f"has exactly this database's schema\n" + ";\n".join(inserts) + ";")
    planned.data = {"version": version}
    for m in adopted:
        ctx.history[m.version] = _projected_row(m, "baseline")


def _matching_version(ctx: _Ctx, history: dict, current: int, actual: dict) -> int:
    """The highest version N whose migrations 0001..N produce exactly the live schema."""
    from shipshape import catalog, verify

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
    from shipshape import migrations, verify

    version = planned.data["version"]
    if not migrations.read_history(ctx.conn):
        adopted = verify.baseline(ctx.conn, ctx.target, ctx.loaded, version, progress=ctx.progress)
    else:
        adopted = _adopt(ctx, version)
    return f"recorded {len(adopted)} migration(s) up to {version:04d} after proving the schema"


def _adopt(ctx: _Ctx, version: int) -> list:
    """baseline for a database that has a history: record the unrecorded migrations up to
    version, only after proving the schema equals what 0001..version produce."""
    from shipshape import catalog, database, migrations, verify

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
            conn.execute(database.query("history_insert"), {
                "version": m.version, "name": m.name, "checksum": m.checksum,
                "source_checksum": m.source_checksum, "duration_ms": 0,
                "applied_by": f"baseline by runbook {ctx.book.id} by {ctx.operator}",
                "success": True})
    return todo


def _plan_reapply(ctx: _Ctx, planned: PlannedStep) -> None:
    from shipshape import verify

    missing = [d for d in _drift(ctx) if d.change == "missing" and d.kind in ("table", "column")]
    if not missing:
        planned.skip = "no table or column of an applied migration is missing"
        return
    applied = _applied(ctx, _fresh_history(ctx))
    owners: dict[int, list] = {}
    unowned = list(missing)
    for i in range(1, len(applied) + 1):
        if not unowned:
            break
        snap = verify.shadow_snapshot(ctx.target, applied[:i], ctx.progress)
        section = {"table": "tables", "column": "columns"}
        for d in list(unowned):
            if d.name in (snap.get(section[d.kind]) or {}):
                owners.setdefault(applied[i - 1].version, []).append(d)
                unowned.remove(d)
    by_version = {m.version: m for m in ctx.loaded}
    todo = [by_version[v] for v in sorted(owners)]
    for m in todo:
        if not m.transactional or m.destructive:
            raise Refused(
                f"{m.name} created missing objects but cannot be re-run safely "
                f"({'it is not transactional' if not m.transactional else 'it is destructive'}); "
                f"restore its objects through a new migration.")
    planned.sql = _migration_blocks(todo, "re-run ")
    planned.summary = "; ".join(
        f"re-run {by_version[v].name}: {_listing([f'{d.kind} {d.name}' for d in ds])} missing"
        for v, ds in sorted(owners.items()))
    planned.data = {"versions": [m.version for m in todo]}


def _run_reapply(ctx: _Ctx, planned: PlannedStep) -> str:
    from shipshape import migrations

    by_version = {m.version: m for m in ctx.loaded}
    done = []
    for version in planned.data["versions"]:
        m = by_version[version]
        with ctx.progress.step(f"re-run {m.name}") as step:
            step.note(f"{migrations.apply(ctx.conn, ctx.env, m, applied_by=f'runbook {ctx.book.id} by {ctx.operator}')} ms")
        done.append(m.name)
    return f"re-ran {', '.join(done)}"


def _plan_restore(ctx: _Ctx, planned: PlannedStep) -> None:
    statements: list[tuple[int, str, bool]] = []  # (order, sql, transactional)
    for d in _drift(ctx):
        statements_for, why_left = _restore_statements(ctx, d)
        if why_left:
            planned.left.append(f"{d.describe()} ({why_left})")
        statements += statements_for
    if not statements:
        planned.skip = "nothing that restore can rebuild"
        return
    statements.sort(key=lambda s: s[0])
    planned.sql = "\n".join(s + ";" for _, s, _ in statements)
    planned.summary = f"{len(statements)} statement(s) rebuilding what the migrations define"
    planned.data = {"statements": [(s, t) for _, s, t in statements]}


_CONSTRAINT_ORDER = {"PRIMARY KEY": 10, "UNIQUE": 11, "EXCLUDE": 12, "CHECK": 13, "FOREIGN KEY": 14}


def _restore_statements(ctx: _Ctx, d) -> tuple[list[tuple[int, str, bool]], str]:
    """The statements that rebuild one difference, or why restore leaves it."""
    from psycopg import sql

    conn = ctx.conn

    def text(template: str, **parts) -> str:
        return sql.SQL(_template(template)).format(**parts).as_string(conn)

    if d.kind == "index" and d.change in ("missing", "changed"):
        concurrent = ctx.env.concurrent_indexes
        out = []
        if d.change == "changed":
            out.append((20, text("runbook/restore_index_drop",
                                 concurrently=sql.SQL("CONCURRENTLY " if concurrent else ""),
                                 name=_identifier(d.name)), not concurrent))
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
            "runbook/restore_constraint", table=_identifier(table), name=sql.Identifier(name),
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
                                    table=_identifier(table), column=column), True))
            else:
                out.append((1, text("runbook/restore_column_set_default", table=_identifier(table),
                                    column=column, default=sql.SQL(expected["default"])), True))
        if expected["nullable"] != actual["nullable"]:
            out.append((2, text("runbook/restore_column_not_null", table=_identifier(table),
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
            out.append((30, text("runbook/restore_revoke", table=_identifier(d.name),
                                 grantee=who), True))
            if want:
                out.append((31, text("runbook/restore_grant", table=_identifier(d.name),
                                     grantee=who, privileges=sql.SQL(", ").join(
                                         sql.SQL(p) for p in sorted(want))), True))
        return out, ""
    if d.change == "missing" and d.kind in ("table", "column"):
        return [], "the reapply step re-runs the migration that creates it"
    if d.change == "unexpected":
        return [], "no migration creates it: adopt it in a migration, or drop it in one"
    return [], "restore does not rebuild this kind of object: write a migration"


def _identifier(name: str):
    from psycopg import sql

    return sql.Identifier(*name.split(".", 1)) if "." in name else sql.Identifier(name)


def _run_restore(ctx: _Ctx, planned: PlannedStep) -> str:
    import psycopg

    from shipshape import database
    from shipshape.errors import SQLFailed

    conn = ctx.conn
    statements = planned.data["statements"]
    in_tx = [s for s, t in statements if t]
    outside = [s for s, t in statements if not t]
    current = {"sql": ""}

    def work():
        with conn.transaction():
            database.set_local_timeouts(conn, ctx.env)
            for statement in in_tx:
                current["sql"] = statement
                conn.execute(statement)
            if not outside:
                ctx.record(planned, "done")

    try:
        if in_tx:
            database.retry_on_lock_timeout(conn, ctx.env, work, what=f"Step {planned.step.id}",
                                           then="run the runbook again; nothing of this step "
                                                "was applied.")
        if outside:
            conn.autocommit = True
            try:
                database.set_session_timeouts(conn, ctx.env)
                for statement in outside:
                    current["sql"] = statement
                    conn.execute(statement)
            finally:
                conn.execute("RESET lock_timeout")
                conn.execute("RESET statement_timeout")
                conn.autocommit = False
    except psycopg.errors.LockNotAvailable:  # a CONCURRENTLY statement, outside the retries
        from shipshape.errors import Busy

        raise Busy(f"Step {planned.step.id} could not get its locks within lock_timeout="
                   f"{ctx.env.lock_timeout} at `{_one_line(current['sql'])[:200]}`; blocking: "
                   f"{database.describe_holders(database.table_lock_holders(conn))}. An index "
                   f"it was building may be left INVALID (doctor shows it); run the runbook "
                   f"again when they are gone.") from None
    except psycopg.Error as exc:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        reason = (exc.diag.message_primary or str(exc)).strip()
        if exc.diag.message_detail:
            reason += f" ({exc.diag.message_detail})"
        raise SQLFailed(
            f"Step {planned.step.id} failed at `{_one_line(current['sql'])[:200]}`: "
            f"{redact(reason)}. Its transaction was rolled back: nothing of this step was "
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

    from shipshape import migrations
    from shipshape.errors import SQLFailed
    from shipshape.render import directives

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
                        f"{redact((exc.diag.message_primary or str(exc)).strip())}. Nothing was "
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

    from shipshape import database
    from shipshape.errors import SQLFailed

    conn = ctx.conn
    expected = planned.data["count"]

    class _Changed(Exception):
        pass

    def work():
        with conn.transaction():
            database.set_local_timeouts(conn, ctx.env)
            cur = conn.execute(planned.data["change"])
            if cur.rowcount != expected:
                raise _Changed(cur.rowcount)
            ctx.record(planned, "done")
        return cur.rowcount

    try:
        count = database.retry_on_lock_timeout(conn, ctx.env, work, what=f"Step {planned.step.id}",
                                               then="run the runbook again; nothing of this "
                                                    "step was applied.")
    except _Changed as exc:
        raise Refused(f"Step {planned.step.id}: the fix would change {exc.args[0]} row(s), but "
                      f"the plan showed {expected}: the data changed since. It was rolled back "
                      f"(nothing changed); run the runbook again to see the rows now.") from None
    except psycopg.errors.LockNotAvailable:
        raise
    except psycopg.Error as exc:
        reason = (exc.diag.message_primary or str(exc)).strip()
        raise SQLFailed(f"Step {planned.step.id} ({planned.data['path']}) failed: "
                        f"{redact(reason)}. It was rolled back: nothing of it was applied.") from None
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

    from shipshape import database

    conn = ctx.conn
    ended, gone = [], []
    for s in planned.data["sessions"]:
        params = {"pid": s.pid, "backend_start": s.backend_start}
        try:
            row = conn.execute(database.query("runbook/terminate"), params).fetchone()
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            raise Refused(f"Cannot end pid {s.pid}: "
                          f"{redact((exc.diag.message_primary or str(exc)).strip())}. The "
                          f"migration role needs pg_signal_backend (or ask a DBA to end it)."
                          + (f" Already ended: pid {', '.join(map(str, ended))}." if ended else "")
                          ) from None
        if not row:
            gone.append(s.pid)
            continue
        deadline = time.monotonic() + 10
        while conn.execute(database.query("runbook/session_alive"), params).fetchone()[0]:
            conn.commit()
            if time.monotonic() > deadline:
                raise Refused(f"pid {s.pid} did not end within 10 s of pg_terminate_backend.")
            time.sleep(0.05)
        conn.commit()
        ended.append(s.pid)
    return (f"ended pid {', '.join(map(str, ended))}" if ended else "nothing ended") + (
        f"; already gone: pid {', '.join(map(str, gone))}" if gone else "")


def _plan_rollback(ctx: _Ctx, planned: PlannedStep) -> None:
    from shipshape import bundle, migrations

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
    from shipshape import migrations

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
    from shipshape.database import query

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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _listing(items: list[str], shown: int = 5) -> str:
    if len(items) <= shown:
        return ", ".join(items)
    return ", ".join(items[:shown]) + f" and {len(items) - shown} more"


# --- running: detect -> plan -> confirm -> steps -> verify -> report -------------------------

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


def run(target: Target, sql_dir: Path | str, name: str, *, runbooks: list[Runbook] | None = None,
        runbooks_dir: Path | str | None = None, dry_run: bool = False, yes: bool = False,
        reason: str | None = None, confirm=None, long_transaction: str | None = None,
        progress=None, reports_dir: Path | str | None = None, show=None,
        app_check=None, command_options: dict | None = None) -> RunResult:
    """Run a runbook against target. Returns the result when it fixed the problem (or had
    nothing to do, or only planned); raises the failing step's error otherwise, with the
    result attached as `exc.run_result` (a report is written for every run that changed
    something or escalated).

    confirm: callable(question) -> bool, or None when there is no terminal to ask on
    (then only --yes confirms). show: callable(text), to print the plan before confirming.
    """
    from shipshape import database, doctor, migrations
    from shipshape.render import Renderer
    from shipshape.report import Progress

    progress = progress or Progress()
    show = show or (lambda text: None)
    sql_dir = Path(sql_dir)
    runbooks = runbooks if runbooks is not None else load(runbooks_dir, sql_dir=sql_dir)
    book = get(runbooks, name)
    env = target.env
    long_transaction = long_transaction or doctor.DEFAULT_LONG_TRANSACTION
    options = dict(command_options or {})
    result = RunResult(runbook=book.id, title=book.title, env=env.name, target=target.describe(),
                       operator=database.operator(), reason=(reason or "").strip() or None,
                       started_at=datetime.now(UTC), escalation=list(book.escalate_when),
                       escalate_to=book.escalate_to)

    def cmd(other: Runbook) -> str:
        return command(other, env.name, long_transaction=long_transaction
                       if long_transaction != doctor.DEFAULT_LONG_TRANSACTION else None, **options)

    renderer = Renderer(sql_dir, env)
    loaded = migrations.load(sql_dir, env, renderer)
    conn = lock = None
    try:
        if book.steps:
            # The deploy's lock for the whole run, detection included: nobody migrates
            # between the plan that is shown and the steps that run.
            conn = database.connect(target, purpose=f"runbook {book.id}")
            if not dry_run:
                lock = database.advisory_lock(conn, env.migration_lock_wait)
                lock.__enter__()
        result.event(f"detect: doctor on {target.describe()}")
        diagnosis = doctor.diagnose(target, sql_dir, long_transaction=long_transaction,
                                    progress=progress, app_check=app_check)
        groups = doctor.group(diagnosis.findings, runbooks, command=cmd)
        result.findings_before = doctor.tagged(groups)
        result.mine = [f for f in result.findings_before if f.runbook == book.id]
        result.next = [(g.runbook.id, g.command) for g in groups
                       if g.runbook is not None and g.runbook.id != book.id]
        result.event(f"detected {len(diagnosis.findings)} finding(s), {len(result.mine)} for "
                     f"{book.id}")
        if not result.mine:
            return _nothing_to_do(result, book, diagnosis, conn, dry_run)
        if book.escalate_only:
            result.outcome, result.exit_code = "escalated", Refused.exit_code
            result.message = (f"{book.title}: this runbook fixes nothing by itself; it "
                              f"escalates. {_escalation_text(book)}")
            result.event("escalated: no step can fix this safely")
            raise _finish_error(result, Refused(result.message), reports_dir)
        ctx = _Ctx(book=book, target=target, sql_dir=sql_dir, conn=conn, renderer=renderer,
                   loaded=loaded, diagnosis=diagnosis, history=dict(migrations.read_history(conn)),
                   progress=progress, operator=result.operator, rerun=cmd(book))
        open_run, done = _open_run(conn, book, env)
        try:
            result.steps = _plan(ctx, book, done)
        except ShipshapeError as exc:
            result.outcome, result.exit_code = "escalated", exc.exit_code
            result.message = f"Planning {book.id} stopped: {exc}"
            result.event(f"plan refused: {exc.message}")
            raise _finish_error(result, exc, reports_dir, escalate=book) from None
        result.event("plan: " + "; ".join(
            f"{s.step.id}: {s.done_before or s.skip or s.summary}" for s in result.steps))
        show(render_plan(result, book))
        if dry_run:
            result.outcome = "dry-run"
            result.message = "Dry run: nothing was changed."
            return result
        _gate(result, book, env, yes=yes, confirm=confirm)
        result.event("confirmed by " + (f"{result.operator} with --yes" if yes else result.operator)
                     + (f"; reason: {result.reason}" if result.reason else ""))
        _start_run(ctx, result, open_run)
        _execute(ctx, result, reports_dir)
        result.event("verify: doctor again")
        after = doctor.diagnose(target, sql_dir, long_transaction=long_transaction,
                                progress=progress, app_check=app_check)
        after_groups = doctor.group(after.findings, runbooks, command=cmd)
        result.findings_after = doctor.tagged(after_groups)
        result.next = [(g.runbook.id, g.command) for g in after_groups
                       if g.runbook is not None and g.runbook.id != book.id]
        remaining = [f for f in after.findings if any(m.matches(f) for m in book.verify_absent)]
        if remaining:
            result.outcome, result.exit_code = "unresolved", ProblemsFound.exit_code
            result.message = (f"{book.id} ran every step, but verify still finds "
                              f"{_listing([f'{f.code} {f.object}' for f in remaining])}. "
                              f"{_escalation_text(book)}")
            result.event("verify: still found " + ", ".join(f.code for f in remaining))
            _finish_run(ctx, result, "unresolved")
            raise _finish_error(result, ProblemsFound(result.message, findings=remaining),
                                reports_dir)
        result.outcome = "fixed"
        others = len(result.findings_after)
        result.message = (f"{book.id}: fixed; verify finds none of "
                          f"{', '.join(str(m) for m in book.verify_absent)}."
                          + (f" {others} other finding(s) remain: run "
                             f"{' then '.join(f'`{c}`' for _, c in result.next)}"
                             if others and result.next else
                             f" {others} other finding(s) remain (see doctor)." if others
                             else " Verify is clean."))
        result.event("verify: " + ("clean" if not others else f"{others} other finding(s)"))
        _finish_run(ctx, result, "fixed")
        _write_reports(result, book, reports_dir)
        return result
    finally:
        if lock is not None:
            try:
                lock.__exit__(None, None, None)
            except Exception:  # noqa: BLE001, S110 - the connection may be gone with the failure
                pass
        if conn is not None and not conn.closed:
            conn.close()


def _nothing_to_do(result: RunResult, book: Runbook, diagnosis, conn, dry_run: bool) -> RunResult:
    if conn is not None and not dry_run:
        open_run, _ = _open_run(conn, book, result.env)
        if open_run:
            conn.execute(_query("runbook/run_finish"), {
                "id": open_run["id"], "status": "resolved",
                "detail": _jsonb({"resolved": f"nothing left for {book.id} when rerun by "
                                              f"{result.operator}"})})
            conn.commit()
            result.event(f"closed unfinished run #{open_run['id']}: nothing left to do")
    if diagnosis.healthy and not diagnosis.findings:
        result.outcome = "nothing-to-do"
        result.message = f"Nothing for {book.id} to do: doctor finds the database healthy."
        return result
    if not result.next:
        result.outcome = "nothing-to-do"
        result.message = (f"Nothing for {book.id} to do; doctor's other findings have no "
                          f"runbook (run `invoke doctor --env {result.env}`).")
        if not diagnosis.healthy:
            result.outcome, result.exit_code = "elsewhere", ProblemsFound.exit_code
            raise _attach(ProblemsFound(result.message, findings=result.findings_before), result)
        return result
    result.outcome, result.exit_code = "elsewhere", ProblemsFound.exit_code
    result.message = (f"No finding is for {book.id}. Doctor's findings belong to: "
                      + "; ".join(f"{r} (`{c}`)" for r, c in result.next) + ".")
    raise _attach(ProblemsFound(result.message, findings=result.findings_before), result)


def _plan(ctx: _Ctx, book: Runbook, done: dict) -> list[PlannedStep]:
    plan = []
    for position, step in enumerate(book.steps, 1):
        planned = PlannedStep(step, position)
        if step.id in done:
            row = done[step.id]
            planned.done_before = (f"done in an earlier attempt of this run "
                                   f"({row['finished_at']:%Y-%m-%d %H:%M:%S %Z}, {row['detail']})")
            planned.status = "already-done"
        with ctx.progress.step(f"plan {step.id} ({step.do})"):
            _OPS[step.do][0](ctx, planned)
        plan.append(planned)
    return plan


def _gate(result: RunResult, book: Runbook, env: Environment, *, yes: bool, confirm) -> None:
    active = [s for s in result.steps if not s.skip and not s.done_before]
    if not active:
        return
    needs_yes = [s for s in active if s.needs_yes]
    destructive = [s for s in active if s.destructive]
    if env.name == "prod" and not result.reason:
        raise Refused(f"prod: `--reason \"...\"` is required to run {book.id}; it is recorded "
                      f"in shipshape.runbook_runs and the report. Nothing was changed.")
    if destructive and not env.allow_destructive:
        raise Refused(f"Env {env.name} forbids destructive statements, and step(s) "
                      f"{', '.join(s.step.id for s in destructive)} delete data. Nothing was "
                      f"changed. After reviewing the rows in the plan, and only deliberately, "
                      f"rerun with --set allow_destructive=true --yes.")
    if needs_yes and not yes:
        raise Refused(f"Step(s) {', '.join(s.step.id for s in needs_yes)} end other sessions "
                      f"(their open transactions roll back): that needs --yes in every env. "
                      f"Read the plan above, then rerun with --yes. Nothing was changed.")
    if yes:
        return
    flag = ' --yes --reason "..."' if env.name == "prod" else " --yes"
    if not env.is_local:
        raise Refused(f"{env.name}: the plan above changes the database; review it, then rerun "
                      f"with{flag}. Nothing was changed.")
    if confirm is None:
        raise Refused("No terminal to confirm on (stdin is not a TTY): review the plan above "
                      "(or `--dry-run`), then rerun with --yes. Nothing was changed.")
    if not confirm(f"Run {len(active)} step(s) of {book.id} on {result.target}? [y/N] "):
        raise Refused("Not confirmed: nothing was changed.")


def _open_run(conn, book: Runbook, env_name) -> tuple[dict | None, dict]:
    """The unfinished run a rerun resumes, and its steps that are done."""
    from psycopg.rows import dict_row

    env_name = env_name.name if isinstance(env_name, Environment) else env_name
    exists = conn.execute("SELECT to_regclass('shipshape.runbook_runs') IS NOT NULL").fetchone()[0]
    if not exists:
        conn.commit()
        return None, {}
    with conn.cursor(row_factory=dict_row) as cur:
        run_row = cur.execute(_query("runbook/run_open"),
                              {"runbook": book.id, "env": env_name}).fetchone()
        steps = cur.execute(_query("runbook/steps_read"),
                            {"run_id": run_row["id"]}).fetchall() if run_row else []
    conn.commit()
    return run_row, {s["step"]: s for s in steps if s["status"] == "done"}


def _start_run(ctx: _Ctx, result: RunResult, open_run: dict | None) -> None:
    conn = ctx.conn
    with conn.transaction():
        conn.execute(_query("runbook_bootstrap"))
    detail = _jsonb({"target": result.target})
    if open_run:
        row = conn.execute(_query("runbook/run_resume"), {
            "id": open_run["id"], "reason": result.reason, "detail": detail}).fetchone()
        result.attempt = open_run["attempts"] + 1
        result.event(f"resumed run #{open_run['id']} (attempt {result.attempt}), after its "
                     f"done steps")
    else:
        row = conn.execute(_query("runbook/run_insert"), {
            "runbook": ctx.book.id, "env": ctx.env.name, "operator": result.operator,
            "reason": result.reason, "detail": detail}).fetchone()
        result.event(f"started run #{row[0]}")
    conn.commit()
    result.run_id = row[0]

    def record(planned: PlannedStep, status: str) -> None:
        conn.execute(_query("runbook/step_record"), {
            "run_id": result.run_id, "step": planned.step.id, "position": planned.position,
            "operation": planned.step.do, "status": status, "sql_sha256": planned.sha256,
            "started_at": planned.started_at or datetime.now(UTC),
            "duration_ms": planned.duration_ms, "operator": result.operator,
            "detail": redact(planned.detail or planned.skip)[:2000]})

    ctx.record = record


def _execute(ctx: _Ctx, result: RunResult, reports_dir) -> None:
    from shipshape.report import Progress

    conn = ctx.conn
    for planned in result.steps:
        step = planned.step
        if planned.done_before:
            result.event(f"step {step.id}: already done, not applied again")
            continue
        planned.started_at = datetime.now(UTC)
        started = time.monotonic()
        try:
            if step.do in _GUARDED:
                fresh = planned
            else:
                # Plan again against the database as it is now: what runs must be what
                # was shown (earlier steps may have changed what this one sees).
                ctx.history = dict(_fresh_history(ctx))
                fresh = PlannedStep(step, planned.position)
                quiet = dataclasses.replace(ctx, progress=Progress())
                _OPS[step.do][0](quiet, fresh)
            if fresh.skip:
                planned.status, planned.detail = "skipped", fresh.skip
                ctx.record(planned, "skipped")
                conn.commit()
                result.event(f"step {step.id}: skipped, {fresh.skip}")
                continue
            if planned.skip or fresh.sha256 != planned.sha256:
                raise Refused(
                    f"Step {step.id}: the database changed since the plan was shown (the step "
                    f"would now run other SQL). Nothing of it ran; the steps before it are "
                    f"recorded. Run the runbook again to see the new plan.")
            result.event(f"step {step.id} ({step.do}): started, sql sha256 {planned.sha256}")
            planned.data = fresh.data  # the same SQL as shown, planned on the current state
            with ctx.progress.step(f"{planned.position}. {step.id} ({step.do})") as note:
                planned.detail = _OPS[step.do][1](ctx, planned)
                note.note(planned.detail)
            planned.duration_ms = int((time.monotonic() - started) * 1000)
            planned.status = "done"
            ctx.record(planned, "done")  # a fix or restore already recorded it atomically
            conn.commit()
            result.event(f"step {step.id}: done in {planned.duration_ms} ms: {planned.detail}")
        except ShipshapeError as exc:
            planned.duration_ms = int((time.monotonic() - started) * 1000)
            planned.status, planned.detail = "failed", str(exc)
            for later in result.steps[planned.position:]:
                if later.status == "planned":
                    later.status = "not-run"
            result.outcome, result.exit_code = "failed", exc.exit_code
            result.event(f"step {step.id}: failed: {exc.message}")
            try:
                if not _idle(conn):  # end what the failing step left open
                    conn.rollback()
                ctx.record(planned, "failed")
                conn.commit()
            except Exception:  # noqa: BLE001, S110 - the database may be what failed
                pass
            _finish_run(ctx, result, "failed")
            result.message = (f"Step {planned.position} ({step.id}) failed; steps before it are "
                              f"done and recorded. Fix the cause, then run `{ctx.rerun}` again: "
                              f"it resumes at {step.id} and never applies a done step twice. "
                              f"{_escalation_text(ctx.book)}")
            exc.message = f"{exc.message}\n{result.message}"
            exc.args = (exc.message,)
            raise _finish_error(result, exc, reports_dir)


def _finish_run(ctx: _Ctx, result: RunResult, status: str) -> None:
    if result.run_id is None:
        return
    try:
        conn = ctx.conn
        if not _idle(conn):
            conn.rollback()
        conn.execute(_query("runbook/run_finish"), {
            "id": result.run_id, "status": status,
            "detail": _jsonb({"outcome": result.outcome, "last_attempt_by": result.operator})})
        conn.commit()
    except Exception:  # noqa: BLE001, S110 - best effort, the report still records the run
        pass


def _finish_error(result: RunResult, exc: ShipshapeError, reports_dir, *, escalate=None):
    if escalate is not None and "Escalate" not in exc.message:
        exc.message = f"{exc.message}\n{_escalation_text(escalate)}"
        exc.args = (exc.message,)
    _write_reports(result, None, reports_dir)
    if result.report_md:
        exc.message = f"{exc.message}\nReport: {result.report_md}"
        exc.args = (exc.message,)
    return _attach(exc, result)


def _attach(exc: ShipshapeError, result: RunResult) -> ShipshapeError:
    exc.run_result = result
    return exc


def _escalation_text(book: Runbook) -> str:
    return ("Escalate" + (f" to {book.escalate_to}" if book.escalate_to else "") + " when: "
            + "; ".join(book.escalate_when) + ".")


def _idle(conn) -> bool:
    import psycopg

    return conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@cache
def _query(name: str) -> str:
    from shipshape.database import query

    return query(name)


def _jsonb(value: dict):
    from psycopg.types.json import Jsonb

    return Jsonb(value)


# --- output: the plan, the result, the reports --------------------------------------------

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
                     f"{_one_line(what)[:300]}")
    if result.message:
        lines.append(result.message)
    if result.report_md:
        lines.append(f"report: {result.report_md} (and {result.report_json.name})")
    return redact("\n".join(lines)) + "\n"


def reports_root(reports_dir: Path | str | None = None) -> Path:
    from shipshape.environments import project_root

    if reports_dir:
        return Path(reports_dir)
    if os.environ.get("SHIPSHAPE_REPORTS_DIR"):
        return Path(os.environ["SHIPSHAPE_REPORTS_DIR"])
    return project_root() / "reports"


def _write_reports(result: RunResult, book: Runbook | None, reports_dir) -> None:
    """reports/<time>-<runbook>-<env>[-run<id>].md and .json; everything redacted."""
    from shipshape.report import to_jsonable

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
        lines.append(f"- result: {_one_line(s.detail or s.skip or s.done_before or s.status)}")
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
            f"{_one_line(f.message)}" for f in findings]


def _rows_md(rows: list[dict]) -> list[str]:
    columns = list(rows[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(_one_line(str(row[c])).replace("|", "\\|") for c in columns) + " |"
            for row in rows]
    return out


# --- the troubleshooting guide, generated ---------------------------------------------------

DOCS_PATH = Path("docs") / "runbooks.md"


def render_docs(runbooks: list[Runbook], sql_dir: Path | str) -> str:
    """docs/runbooks.md: every runbook as the troubleshooting guide. Deterministic (no
    time, no env, no path outside the repository), so a test can compare it with the
    committed file."""
    from shipshape.doctor import CODES

    sql_dir = Path(sql_dir)
    ordered = sorted(runbooks, key=lambda b: (b.priority, b.id))
    lines = [
        "# Runbooks: the troubleshooting guide",
        "",
        "<!-- Generated by `invoke runbook.docs` from runbooks/*.yaml and sql/fixes/. Do not",
        "     edit: change the runbook and render again (a test fails when this file is stale). -->",
        "",
        "Every incident in the record had the same shape: the code and the database disagreed,",
        "and recovery was SQL pasted by hand. Here each incident class is a runbook that runs",
        "shipshape's own operations (migrate, seed, baseline, a reviewed data fix, ...), never",
        "a copy of their SQL.",
        "",
        "1. `invoke doctor --env <env>` runs every check and prints the findings grouped by the",
        "   runbook that fixes them, with the command to run (exit 0 healthy, 2 not; `--json`).",
        "2. `invoke runbook.run <id> --env <env> --dry-run` shows what it would do: the findings,",
        "   each step and its exact SQL. Nothing changes.",
        "3. `invoke runbook.run <id> --env <env>` detects, shows the plan, asks (outside `local`:",
        "   `--yes`; in prod also `--reason \"...\"`), runs the steps in order, verifies, and",
        "   writes an incident report to `reports/`. A failed step stops the run; running the",
        "   same command again resumes after the last step that succeeded.",
        "",
        "## Quick reference",
        "",
        "| symptom | runbook |",
        "|---|---|",
    ]
    for book in ordered:
        for symptom in book.symptoms:
            lines.append(f"| {_md_cell(symptom)} | [{book.id}](#{book.id}) |")
    lines += ["", "## Finding codes", "", "| code | meaning | runbook |", "|---|---|---|"]
    for code, meaning in CODES.items():
        owners = [b.id for b in ordered if any(m.code == code for m in b.detects)]
        cleared = [b.id for b in ordered if b.id not in owners
                   and any(m.code == code for m in b.also_clears)]
        who = ", ".join(f"[{o}](#{o})" for o in owners) or "-"
        if cleared:
            who += " (with: " + ", ".join(f"[{o}](#{o})" for o in cleared) + ")"
        lines.append(f"| `{code}` | {meaning} | {who} |")
    lines += ["", "A finding goes to the first runbook, in the order below, that detects it or",
              "clears it along with the finding that triggered it (the failing checks of a",
              "missing table go with the migrations that create it).", ""]
    for book in ordered:
        lines += render_book(book, sql_dir)
    lines += ["## Operations", "", "Every step is one of these; none carries SQL of its own.", ""]
    for op, spec in OPERATIONS.items():
        args = ", ".join(f"`{a}`" for a in spec["args"]) or "none"
        lines.append(f"- **{op}** (arguments: {args}): {spec['doc']}.")
    return "\n".join(lines).rstrip() + "\n"


def render_book(book: Runbook, sql_dir: Path) -> list[str]:
    lines = [f"<a id=\"{book.id}\"></a>", f"## {book.title}", "",
             f"`invoke runbook.run {book.id} --env <env>` · priority {book.priority}"
             + (" · escalates only" if book.escalate_only else ""), "", book.summary, ""]
    if book.incidents:
        lines += ["Replaces: " + ", ".join(f"`{i}`" for i in book.incidents) + ".", ""]
    lines += ["**Symptoms**", ""] + [f"- {s}" for s in book.symptoms] + [""]
    lines += ["**Detected by**: " + ", ".join(f"`{m}`" for m in book.detects)
              + (("; also clears " + ", ".join(f"`{m}`" for m in book.also_clears))
                 if book.also_clears else ""), ""]
    if book.steps:
        lines += ["**Steps**", ""]
        for n, step in enumerate(book.steps, 1):
            args = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                             for k, v in step.args.items())
            lines.append(f"{n}. **{step.id}** — `{step.do}`{f' ({args})' if args else ''}: "
                         f"{step.why}")
            if step.do == "fix":
                path = sql_dir / FIXES_DIR / f"{step.arg('name')}.sql.j2"
                lines += ["", f"   `sql/{FIXES_DIR}/{path.name}`:", "", "   ```sql"]
                text = path.read_text() if path.is_file() else "-- (missing)"
                lines += [f"   {line}".rstrip() for line in text.rstrip().splitlines()]
                lines += ["   ```", ""]
        lines.append("")
        lines += ["**Verified by**: none of " + ", ".join(f"`{m}`" for m in book.verify_absent)
                  + " remains" + (f": {book.verify_why}" if book.verify_why else "."), ""]
    else:
        lines += [("**Steps**: none. Nothing in this class can be fixed safely by a tool: the "
                   "runbook names the problem, writes the report, and escalates (exit 3)."), ""]
    lines += ["**Escalate" + (f" to {book.escalate_to}" if book.escalate_to else "") + " when**",
              ""] + [f"- {w}" for w in book.escalate_when] + [""]
    return lines


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")
