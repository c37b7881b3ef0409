"""The runbook file: its schema (OPERATIONS are the step kinds), loading and validating
runbooks/*.yaml, and which runbook fixes which finding, with the command that runs it."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

from shipshape import yamlfile
from shipshape.errors import ConfigError

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
        "doc": "re-run, with its own SQL, each applied migration all of whose tables and "
               "columns are missing (the history says applied, the objects are not there); "
               "one whose objects are only partly missing is not re-run (its SQL would fail "
               "on those that exist; the plan says so), and restore adds its missing columns "
               "back; a re-run fails loudly and changes nothing if any of its other objects "
               "exist",
    },
    "restore": {
        "args": {},
        "doc": "add a missing column back to its table (`ALTER TABLE ... ADD COLUMN` with "
               "its type, collation, default or generated expression and NOT NULL), then "
               "rebuild drifted indexes, constraints (e.g. an FK without ON DELETE CASCADE), "
               "column NOT NULL/defaults and grants exactly as the migrations define them, "
               "taking each definition from a shadow database built from the same "
               "migrations; never drops a table, a column or a row, and never invents a "
               "value: a NOT NULL column without a default on a table with rows, an identity "
               "or a serial column is left for escalation, with the indexes and constraints "
               "that need it",
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
    from shipshape.paths import project_root

    return project_root() / RUNBOOKS_DIR


def load(directory: Path | str | None = None, *, sql_dir: Path | str | None = None) -> list[Runbook]:
    """Every runbook in directory, validated; ConfigError (exit 5) naming file and field.

    With sql_dir, each fix step's template must exist in sql_dir/fixes/.
    """
    from shipshape.engine.findings import CODES

    directory = Path(directory) if directory else default_dir()
    if not directory.is_dir():
        raise ConfigError(f"No runbooks directory at {directory}. Point --runbooks-dir at a "
                          f"directory of <id>.yaml files.")
    runbooks, problems = yamlfile.load_folder(
        directory, lambda path: _parse(path, CODES, Path(sql_dir) if sql_dir else None))
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


def _parse(path: Path, codes: dict, sql_dir: Path | None) -> tuple[Runbook | None, list[str]]:
    doc, unreadable = yamlfile.load(path)
    if unreadable:
        return None, unreadable
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
