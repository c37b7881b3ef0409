"""The runbook as data (Runbook, its Steps, the Matchers of its findings), which runbook
fixes which finding, and the command that runs it.

Reading and validating runbooks/*.yaml into these is loading.py's business; what each
step's operation does is steps/'s.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from shipshape.errors import ConfigError


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
    """One step of a runbook as written: `do` names its step kind (steps.STEP_KINDS), args
    are the arguments the file gives (the kind's Arg reads one, with its default)."""

    id: str
    do: str
    why: str
    args: dict = field(default_factory=dict, hash=False, compare=False)


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
    # Run only when an operator names it (a destructive last resort): doctor never routes
    # a finding to it, and run treats the findings it detects as its own.
    manual: bool = False

    def triggered_by(self, finding) -> bool:
        return any(m.matches(finding) for m in self.detects)

    def clears(self, finding) -> bool:
        return self.triggered_by(finding) or any(m.matches(finding) for m in self.also_clears)

    @property
    def escalate_only(self) -> bool:
        return not self.steps


def get(runbooks: list[Runbook], name: str) -> Runbook:
    for book in runbooks:
        if book.id == name:
            return book
    raise ConfigError(f"Unknown runbook {name!r}. The runbooks are: "
                      f"{', '.join(b.id for b in runbooks)} (`invoke runbook.list`).")


# --- which runbook fixes which finding --------------------------------------------------------

def assign(findings: list, runbooks: list[Runbook]) -> list[Runbook | None]:
    """The runbook that fixes each finding.

    A runbook is triggered when a finding matches its `detects`. Each finding goes to the
    first triggered runbook (by priority) that detects or `also_clears` it: a missing
    table's failing checks go with the migrations that create the table. A manual runbook
    gets none: only an operator who names it runs it.
    """
    ordered = sorted((b for b in runbooks if not b.manual), key=lambda b: (b.priority, b.id))
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
