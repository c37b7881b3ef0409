"""What a step kind is made of, and what passes between its plan and its run.

A StepKind is one operation a runbook step may `do`: its arguments (Arg, the runbook
file's schema for it), its line in the guide, its plan and its run. The plan reads the
database and never changes it: it fills a PlannedStep with the exact SQL and a summary
(or `skip`, why there is nothing to do), and with the kind's own typed data for the run
(`data`, a dataclass per kind). One whose step changes the history records that in
ctx.history, so the steps after it are planned against the history they will see. The
run applies what was planned and returns what it did, in one line.

Context is what a plan and a run see: the runbook, the target and its connection, the
SQL tree, doctor's diagnosis, and the history and schema as the steps planned before
leave them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from shipshape.ops.runbooks.book import Runbook, Step
from shipshape.settings import Environment
from shipshape.targets import Target

if TYPE_CHECKING:
    import psycopg

    from shipshape.engine.migrations import Migration
    from shipshape.engine.render import Renderer
    from shipshape.ops.doctor import Diagnosis
    from shipshape.progress import Progress

Data = TypeVar("Data")

# --- arguments --------------------------------------------------------------------------------

_ACCEPTS: dict[str, Callable[[object], bool]] = {
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
    "version": lambda v: v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v > 0),
    "name": lambda v: isinstance(v, str) and re.fullmatch(r"[a-z0-9_]+", v) is not None,
}
_EXPECTED = {"bool": "true or false", "int": "an integer",
             "version": "a version number or auto",
             "name": "a fix name (lower_snake, a file sql/fixes/<name>.sql.j2)"}


@dataclass(frozen=True)
class Arg:
    """One argument of a step kind: its name in the runbook file, its type (bool, int,
    version: an int or "auto", name: a fix file's name), whether a step must give it, and
    its value when a step does not."""

    name: str
    type: str
    required: bool = False
    default: object = None

    def of(self, step: Step):
        """This argument's value in step: as written, else the default."""
        return step.args.get(self.name, self.default)

    def accepts(self, value) -> bool:
        return _ACCEPTS[self.type](value)

    @property
    def expected(self) -> str:
        """What a value must be, for the message that refuses one."""
        return _EXPECTED[self.type]


# --- a planned step ---------------------------------------------------------------------------

@dataclass
class PlannedStep(Generic[Data]):
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
    needs_reason: bool = False  # it rewrites what the history says: --reason, recorded there
    destructive: bool = False
    data: Data | None = field(default=None, repr=False)  # the kind's plan, for its run
    done_before: str = ""  # resume: done by an earlier attempt of the same run
    status: str = "planned"  # planned | done | skipped | already-done | failed | not-run
    started_at: datetime | None = None
    duration_ms: int = 0
    detail: str = ""

    @property
    def sha256(self) -> str | None:
        from shipshape.engine.migrations import sha256

        return sha256(self.sql) if self.sql else None

    @property
    def plan(self) -> Data:
        """The data the kind's plan left for its run (a step that runs was planned)."""
        if self.data is None:
            raise RuntimeError(f"step {self.step.id} runs without a plan")
        return self.data

    def as_dict(self) -> dict:
        return {"id": self.step.id, "do": self.step.do, "why": self.step.why,
                "position": self.position, "status": self.status, "summary": self.summary,
                "skip": self.skip, "left": self.left, "sql": self.sql,
                "sql_sha256": self.sha256, "destructive": self.destructive,
                "needs_yes": self.needs_yes, "needs_reason": self.needs_reason,
                "preview_total": self.preview_total,
                "preview": self.preview, "started_at": self.started_at,
                "duration_ms": self.duration_ms, "detail": self.detail,
                "done_before": self.done_before}


# --- what a plan and a run see ----------------------------------------------------------------

def _not_started(planned: PlannedStep, status: str) -> None:
    raise RuntimeError(f"step {planned.step.id} recorded ({status}) before the run started")


@dataclass
class Context:
    book: Runbook
    target: Target
    sql_dir: Path
    conn: psycopg.Connection
    renderer: Renderer
    loaded: list[Migration]
    diagnosis: Diagnosis
    history: dict[int, dict]  # projected while planning: the history when the step runs
    progress: Progress
    operator: str
    # writes the step's row on conn (in the caller's transaction); set when the run starts
    record: Callable[[PlannedStep, str], None] = _not_started
    rerun: str = ""  # the command that resumes this run
    reason: str = ""  # the run's --reason
    # projected while planning, like history: what an earlier step (reapply) creates again,
    # as snapshot sections ({section: {name: definition, or None when it drops it}}) taken
    # from the shadow database, so that the steps after it are planned against the schema
    # they will see
    recreated: dict[str, dict[str, dict | None]] = field(default_factory=dict)

    @property
    def env(self) -> Environment:
        return self.target.env


# --- a step kind ------------------------------------------------------------------------------

def _no_problems(args: Mapping[str, object], sql_dir: Path) -> dict[str, str]:
    return {}


def _no_sources(step: Step, sql_dir: Path) -> list[Path]:
    return []


@dataclass(frozen=True)
class StepKind(Generic[Data]):
    """One operation a step may `do`.

    guards_itself: its plan is its own guard at run time, so it is not planned again just
    before it runs (a fix's row count must equal the rows shown; a session is ended only if
    it is the one shown, pid and start time). check: the problems of a step's arguments
    against the SQL tree, by argument. sources: the reviewed SQL files a step runs, shown
    under it in the guide.
    """

    name: str
    doc: str  # what it does, its line in docs/runbooks.md
    plan: Callable[[Context, PlannedStep[Data]], None]
    run: Callable[[Context, PlannedStep[Data]], str]
    args: tuple[Arg, ...] = ()
    guards_itself: bool = False
    check: Callable[[Mapping[str, object], Path], dict[str, str]] = _no_problems
    sources: Callable[[Step, Path], list[Path]] = _no_sources

    def arg(self, step: Step, name: str):
        """The value of step's argument name, or its default."""
        return next(a for a in self.args if a.name == name).of(step)
