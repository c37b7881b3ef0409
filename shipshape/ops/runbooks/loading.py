"""The runbook file: reading runbooks/*.yaml and validating each against the schema
(FIELDS, and each step against its step kind's arguments), every problem reported with
its file, field and line (ConfigError, exit 5)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from shipshape import yamlfile
from shipshape.errors import ConfigError
from shipshape.ops.runbooks.book import Matcher, Runbook, Step
from shipshape.ops.runbooks.steps import STEP_KINDS, StepKind

RUNBOOKS_DIR = "runbooks"
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")

FIELDS = ("id", "title", "summary", "incidents", "priority", "manual", "symptoms", "detects",
          "also_clears", "steps", "verify", "escalate")
REQUIRED = ("id", "title", "summary", "priority", "symptoms", "detects", "steps", "escalate")
STEP_FIELDS = ("id", "do", "why")

# problem(where, message, node): node is the mapping whose line the message names
Problem = Callable[..., None]


def default_dir() -> Path:
    from shipshape.paths import project_root

    return project_root() / RUNBOOKS_DIR


def load(directory: Path | str | None = None, *,
         sql_dir: Path | str | None = None) -> list[Runbook]:
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
    problems += _shared_ids(runbooks)
    if not runbooks and not problems:
        problems.append(f"{directory}: no runbook files (*.yaml)")
    if problems:
        raise _invalid(problems)
    return sorted(runbooks, key=lambda b: (b.priority, b.id))


def _shared_ids(runbooks: list[Runbook]) -> list[str]:
    problems, seen = [], {}
    for book in runbooks:
        if book.id in seen:
            problems.append(f"{book.path}: id: {book.id!r} is also the id of {seen[book.id]}")
        seen.setdefault(book.id, book.path)
    return problems


def _invalid(problems: list[str]) -> ConfigError:
    if len(problems) == 1:
        return ConfigError(f"{problems[0]}. Fix the runbook; `invoke runbook.list` "
                           f"validates them all.")
    return ConfigError(f"The runbooks have {len(problems)} problems. Fix them; "
                       f"`invoke runbook.list` validates them all.", details=problems)


# --- one file ---------------------------------------------------------------------------------

def _parse(path: Path, codes: dict, sql_dir: Path | None) -> tuple[Runbook | None, list[str]]:
    doc, unreadable = yamlfile.load(path)
    if unreadable:
        return None, unreadable
    if not isinstance(doc, dict):
        return None, [f"{path}: expected a mapping with the fields {', '.join(REQUIRED)}"]
    problems: list[str] = []

    def problem(where: str, message: str, node=None) -> None:
        line = getattr(node, "line", None)
        problems.append(f"{path}: {where}: {message}" + (f" (line {line})" if line else ""))

    _check_fields(doc, problem)
    book_id = _book_id(doc, path, problem)
    title = _text(doc, "title", problem)
    summary = _text(doc, "summary", problem)
    priority = _priority(doc, problem)
    symptoms = _texts(doc, "symptoms", problem, required=True)
    incidents = _texts(doc, "incidents", problem, required=False)
    detects = _matchers(doc, "detects", codes, problem, required=True)
    also = _matchers(doc, "also_clears", codes, problem, required=False)
    steps = _steps(doc, problem, sql_dir)
    absent, verify_why = _verify(doc, steps, codes, problem)
    when, to = _escalate(doc, problem)
    manual = doc.get("manual", False)
    if not isinstance(manual, bool):
        problem("manual", f"must be true or false, got {manual!r}", doc)
    if problems:
        return None, problems
    return Runbook(id=book_id, title=title, summary=summary, priority=priority,
                   symptoms=symptoms, detects=detects, also_clears=also, steps=steps,
                   verify_absent=absent, verify_why=verify_why, escalate_when=when,
                   escalate_to=to, incidents=incidents, path=path, manual=manual), []


def _check_fields(doc: dict, problem: Problem) -> None:
    for name in doc:
        if name not in FIELDS:
            problem(str(name), f"unknown field; the fields are {', '.join(FIELDS)}", doc)
    for name in REQUIRED:
        if name not in doc:
            problem(name, "missing required field", doc)


def _book_id(doc: dict, path: Path, problem: Problem):
    book_id = doc.get("id")
    if "id" in doc:
        if not isinstance(book_id, str) or not _ID.match(book_id):
            problem("id", f"must be lower-case letters, digits and dashes, got {book_id!r}", doc)
        elif book_id != path.stem:
            problem("id", f"{book_id!r} must equal the file name ({path.stem!r})", doc)
    return book_id


def _priority(doc: dict, problem: Problem):
    priority = doc.get("priority")
    if "priority" in doc and (not isinstance(priority, int) or isinstance(priority, bool)):
        problem("priority", f"must be an integer (lower runs first), got {priority!r}", doc)
    return priority


def _verify(doc: dict, steps: tuple[Step, ...], codes: dict,
            problem: Problem) -> tuple[tuple[Matcher, ...], str]:
    verify_doc = doc.get("verify")
    if verify_doc is None:
        if steps or (isinstance(doc.get("steps"), list) and doc["steps"]):
            problem("verify", "required when the runbook has steps: `absent` lists the "
                              "finding codes that must be gone afterwards", doc)
        return (), ""
    if not isinstance(verify_doc, dict):
        problem("verify", "must be a mapping with `absent` (finding codes) and `why`", doc)
        return (), ""
    for name in verify_doc:
        if name not in ("absent", "why"):
            problem(f"verify.{name}", "unknown field; the fields are absent, why", verify_doc)
    absent = _matchers(verify_doc, "absent", codes, problem, required=True, prefix="verify.")
    return absent, _text(verify_doc, "why", problem, prefix="verify.", required=False)


def _escalate(doc: dict, problem: Problem) -> tuple[tuple[str, ...], str]:
    if "escalate" not in doc:
        return (), ""
    esc = doc["escalate"]
    if not isinstance(esc, dict):
        problem("escalate", "must be a mapping with `when` (a list) and `to`", doc)
        return (), ""
    for name in esc:
        if name not in ("when", "to"):
            problem(f"escalate.{name}", "unknown field; the fields are when, to", esc)
    when = _texts(esc, "when", problem, required=True, prefix="escalate.")
    return when, _text(esc, "to", problem, prefix="escalate.", required=False)


def _text(doc: dict, name: str, problem: Problem, *, prefix: str = "",
          required: bool = True) -> str:
    value = doc.get(name)
    if name not in doc:
        return ""
    if not isinstance(value, str) or not value.strip():
        problem(prefix + name, f"must be non-empty text, got {value!r}", doc)
        return ""
    return " ".join(value.split())


def _texts(doc: dict, name: str, problem: Problem, *, required: bool,
           prefix: str = "") -> tuple[str, ...]:
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


def _matchers(doc: dict, name: str, codes: dict, problem: Problem, *, required: bool,
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


# --- its steps --------------------------------------------------------------------------------

def _steps(doc: dict, problem: Problem, sql_dir: Path | None) -> tuple[Step, ...]:
    if "steps" not in doc:
        return ()
    value = doc["steps"]
    if not isinstance(value, list):
        problem("steps", "must be a list of steps (empty for a runbook that only escalates)", doc)
        return ()
    steps, ids = [], set()
    for i, raw in enumerate(value):
        step = _step(raw, f"steps[{i}]", ids, problem, sql_dir)
        if step is not None:
            steps.append(step)
    return tuple(steps)


def _step(raw, where: str, ids: set, problem: Problem, sql_dir: Path | None) -> Step | None:
    """The step, or None after reporting its problems. ids: the step ids seen so far."""
    if not isinstance(raw, dict):
        problem(where, f"must be a mapping with id, do, why; got {raw!r}")
        return None
    good = _step_fields(raw, where, ids, problem)
    op = raw.get("do")
    if "do" in raw and op not in STEP_KINDS:
        problem(f"{where}.do", f"unknown operation {op!r}; the operations are "
                               f"{', '.join(STEP_KINDS)}", raw)
        return None
    if op is None:
        return None
    kind = STEP_KINDS[op]
    args, good_args = _step_args(kind, raw, where, problem)
    good = good and good_args
    if good and sql_dir is not None:
        for name, message in kind.check(args, sql_dir).items():
            problem(f"{where}.{name}", message, raw)
            good = False
    return Step(raw["id"], op, " ".join(raw["why"].split()), args) if good else None


def _step_fields(raw: dict, where: str, ids: set, problem: Problem) -> bool:
    """Whether the step has its fields (id, do, why) and a good, unused id and a why."""
    good = True
    for name in STEP_FIELDS:
        if name not in raw:
            problem(where, f"missing required field {name!r}", raw)
            good = False
    step_id, why = raw.get("id"), raw.get("why")
    if "id" in raw and (not isinstance(step_id, str) or not _ID.match(step_id)):
        problem(f"{where}.id",
                f"must be lower-case letters, digits and dashes, got {step_id!r}", raw)
        good = False
    elif step_id in ids:
        problem(f"{where}.id", f"{step_id!r} is used by another step", raw)
        good = False
    ids.add(step_id)
    if "why" in raw and (not isinstance(why, str) or not why.strip()):
        problem(f"{where}.why", f"must be non-empty text, got {why!r}", raw)
        good = False
    return good


def _step_args(kind: StepKind, raw: dict, where: str, problem: Problem) -> tuple[dict, bool]:
    """The arguments the step gives, each known to its kind and of the kind's type; and
    whether they are good (every required one given)."""
    spec = {a.name: a for a in kind.args}
    args, good = {}, True
    for name, value in raw.items():
        if name in STEP_FIELDS:
            continue
        if name not in spec:
            known = ", ".join(spec) or "none"
            problem(f"{where}.{name}",
                    f"not an argument of {kind.name}; its arguments: {known}", raw)
            good = False
        elif not spec[name].accepts(value):
            problem(f"{where}.{name}", f"must be {spec[name].expected}, got {value!r}", raw)
            good = False
        else:
            args[name] = value
    for arg in kind.args:
        if arg.required and arg.name not in raw:
            problem(where, f"{kind.name} needs {arg.name!r}", raw)
            good = False
    return args, good
