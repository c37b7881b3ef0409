"""Discover, render, plan, apply and roll back migrations (engine.history records them).

A migration is a directory sql/migrations/NNNN_slug/ with migrate.sql.j2 and
rollback.sql.j2. Each applies in its own transaction together with its history row,
unless its rendered SQL says `-- shipshape:no-transaction` (e.g. CREATE INDEX
CONCURRENTLY in prod).

Each migration has a phase (`-- shipshape:phase contract`; expand when not declared).
An expand migration keeps the previous app release working (a new table, a nullable
column, an index); a contract migration breaks it (a dropped or renamed column, a new
NOT NULL, a tighter check), so it runs only after every app replica runs a release that
no longer needs what it removes (engine.releases decides that). `plan_phase` splits what
is pending accordingly. A contract migration C breaks the releases built for a version
before C; a release built for C or later no longer uses what C removes.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from shipshape import db
from shipshape.engine import history, irreversible
from shipshape.engine.render import Renderer, directive_arguments, directive_lines, directives
from shipshape.errors import ConfigError, Refused, SQLFailed
from shipshape.settings import Environment

# What parses SQL (pglast: the parser's gate, the lock check, the backfill and index
# checks) and what reads the catalog for a run (the runtime guard, releases) is imported
# where it is used, when something is about to run or render: a run with nothing to do
# imports none of it (tests/integration/test_nothing_to_do.py holds that).
if TYPE_CHECKING:
    from shipshape.engine import guard

_NAME = re.compile(r"^(?P<version>\d{4})_(?P<slug>[a-z0-9][a-z0-9_]*)$")
MIGRATE_FILE = "migrate.sql.j2"
ROLLBACK_FILE = "rollback.sql.j2"


class Phase(StrEnum):
    """When a migration may run relative to the app's rollout; the history records it."""

    EXPAND = "expand"      # before the new app release rolls out; the old one keeps working
    CONTRACT = "contract"  # after every replica runs the new release; breaks the old one


class DeployPhase(StrEnum):
    """What part of the migrations a deploy applies (`deploy --phase`)."""

    EXPAND = "expand"      # pending migrations up to the first contract one
    CONTRACT = "contract"  # everything pending, once no old release is running
    ALL = "all"            # expand, then contract in the same deploy (one local process)


@dataclass(frozen=True)
class Source:
    """A migration directory as found on disk, with its migrate template's source."""

    version: int
    name: str
    root: Path  # the tree's migrations/ folder: the directory is root / name
    text: str = field(default="", compare=False, repr=False)

    @property
    def directory(self) -> Path:  # built when asked: pathlib is slow at 1000 of them
        return self.root / self.name

    @property
    def migrate_path(self) -> Path:
        return self.directory / MIGRATE_FILE

    @property
    def rollback_path(self) -> Path:
        return self.directory / ROLLBACK_FILE


@dataclass(frozen=True)
class Rendered:
    """One template of a migration rendered for an env, and checked."""

    sql: str
    checksum: str
    transactional: bool
    destructive: bool
    # read from the rendered directives, like the two above (a rollback's are unused)
    phase: Phase = Phase.EXPAND
    # The lock findings it accepts: (rule, reason) of each `-- shipshape:lock-ok`.
    lock_ok: tuple[tuple[str, str], ...] = ()
    # `-- shipshape:backfill`: run again and again, a batch per transaction (engine.backfill)
    backfill: bool = False


class Migration:
    """A migration of the tree for one environment.

    What the history compares first (version, name, the template's source checksum) is
    known from discovery; the rendered SQL is rendered (or read from the render cache)
    only when something asks for it, so a run with nothing to apply renders nothing.
    `prepare` is the one place a template becomes SQL that may run.
    """

    def __init__(self, source: Source, renderer: Renderer):
        self.version = source.version
        self.name = source.name
        self.source_checksum = sha256(source.text)
        self.irreversible = irreversible.reason_in(source.text) or ""  # no rollback file
        self._source = source
        self._renderer = renderer

    def __repr__(self) -> str:
        return f"Migration({self.version:04d}, {self.name!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Migration)
                and (self.version, self.name, self.source_checksum, self._renderer.env)
                == (other.version, other.name, other.source_checksum, other._renderer.env))

    def __hash__(self) -> int:
        return hash((self.version, self.name, self.source_checksum))

    @cached_property
    def path(self) -> Path:
        """The migrate template (built when asked: pathlib is slow at 1000 of them)."""
        return self._source.migrate_path

    @property
    def rollback_path(self) -> Path:
        return self._source.rollback_path

    @cached_property
    def up(self) -> Rendered:
        return prepare(self.path, self._renderer, self._source.text)

    @cached_property
    def down(self) -> Rendered:
        if self.irreversible:
            return Rendered("", sha256(""), True, False)
        return prepare(self.rollback_path, self._renderer)

    # the rendered forms, by the names the rest of the engine reads
    sql = property(lambda self: self.up.sql)
    checksum = property(lambda self: self.up.checksum)
    transactional = property(lambda self: self.up.transactional)
    destructive = property(lambda self: self.up.destructive)
    phase = property(lambda self: self.up.phase)
    lock_ok = property(lambda self: self.up.lock_ok)
    backfill = property(lambda self: self.up.backfill)
    rollback_sql = property(lambda self: self.down.sql)
    rollback_transactional = property(lambda self: self.down.transactional)
    rollback_destructive = property(lambda self: self.down.destructive)


class State(StrEnum):
    """A migration's state against the history; `db.status --json` shows the value."""

    APPLIED = "applied"
    PENDING = "pending"
    FAILED = "failed"  # its history row says success = false
    CHECKSUM_MISMATCH = "checksum-mismatch"  # its file changed after it ran
    UNKNOWN = "unknown"  # in the history, not in this code


@dataclass(frozen=True)
class Entry:
    """One line of `db.status`."""

    version: int
    name: str
    state: State
    detail: str = ""
    applied_at: object = None


def sha256(text: str) -> str:
    return hashlib.sha256(text.replace("\r\n", "\n").encode()).hexdigest()


# --- discovery and rendering -----------------------------------------------------------

def discover(sql_dir: Path | str) -> list[Source]:
    """Migration directories in version order; refuses malformed and duplicate versions."""
    root = Path(sql_dir) / "migrations"
    if not root.is_dir():
        raise ConfigError(
            f"No migrations directory at {root}. Point --sql-dir at a tree with "
            f"migrations/NNNN_slug/{MIGRATE_FILE}."
        )
    found: dict[int, Source] = {}
    problems = []
    # os.scandir and plain strings (entry.path is str(root / entry.name)): at 1000
    # migrations, pathlib's per-call overhead was most of a no-op run's discovery. One
    # read (the migrate template, whose source the history is compared by) and one stat
    # (the rollback) per migration.
    with os.scandir(root) as listing:
        entries = sorted((e for e in listing if not e.name.startswith(".")), key=lambda e: e.name)
    for entry in entries:
        directory = entry.path
        match = _NAME.match(entry.name)
        if not match or not entry.is_dir():
            problems.append(f"{directory}: not a migration directory named NNNN_slug "
                            f"(four digits, then lower-case letters, digits, underscores)")
            continue
        version = int(match["version"])
        migrate_file = os.path.join(directory, MIGRATE_FILE)
        text = _read(migrate_file)
        forward_only = irreversible.problems(directory, text, ROLLBACK_FILE)
        problems += forward_only or []
        if text is None:
            problems.append(f"{directory}: missing {MIGRATE_FILE}" if not os.path.isfile(migrate_file)
                            else f"{migrate_file}: cannot be read")
        if forward_only is None and not os.path.isfile(os.path.join(entry.path, ROLLBACK_FILE)):
            problems.append(f"{directory}: missing {ROLLBACK_FILE}")
        if version in found:
            problems.append(f"{directory}: version {version:04d} is also used by "
                            f"{found[version].directory.name}")
            continue
        found[version] = Source(version, entry.name, root, text or "")
    if problems:
        raise Refused(
            f"The migrations in {root} are malformed; fix them before anything is applied.",
            details=problems,
        )
    return [found[v] for v in sorted(found)]


def load(sql_dir: Path | str, env: Environment, renderer: Renderer | None = None) -> list[Migration]:
    """The tree's migrations for env; each is rendered when its SQL is first needed."""
    renderer = renderer or Renderer(sql_dir, env)
    return [Migration(source, renderer) for source in discover(sql_dir)]


def prepare(path: Path, renderer: Renderer, source: str | None = None) -> Rendered:
    """The one place a migration's template becomes SQL that may run: rendered (through
    the render cache) and its directives read. What of it is about to run is checked for
    undeclared destructive SQL by prepared() (check_declared: PostgreSQL's grammar), not
    here: rendering for a view (render, verify's checksums) parses nothing. A declared
    backfill that is not one batched data statement is refused here (exit 5)."""
    if source is None:
        source = _read(path)
        if source is None:
            raise ConfigError(f"{path}: cannot be read.")
    text = renderer.render_source(path, source)
    found = directives(text)
    # engine.backfill and engine.locksafety parse SQL (pglast): imported only for a
    # template that carries their directive (backfill.DIRECTIVE, locksafety.DIRECTIVE)
    if "backfill" in found:
        from shipshape.engine import backfill

        backfill.check(path, text)
    lock_ok: tuple[tuple[str, str], ...] = ()
    if "lock-ok" in found:
        from shipshape.engine import locksafety

        lock_ok = locksafety.parse_accepted(path, text, directive_lines(text, locksafety.DIRECTIVE))
    return Rendered(sql=text, checksum=sha256(text),
                    transactional="no-transaction" not in found,
                    destructive="destructive" in found,
                    phase=_phase(path, text),
                    lock_ok=lock_ok,
                    backfill="backfill" in found)


def _phase(path: Path, rendered: str) -> Phase:
    declared = directive_arguments(rendered).get("phase")
    if declared is None:
        return Phase.EXPAND
    try:
        return Phase(declared)
    except ValueError:
        raise ConfigError(
            f"{path}: `-- shipshape:phase {declared}` is not a phase; write "
            f"`-- shipshape:phase contract` for a migration that breaks the previous app "
            f"release, or nothing (expand is the default).") from None


def _read(path: Path | str) -> str | None:
    """A template's text, newlines universal as in text mode (read as bytes: a third
    faster at 1000 small files than through a TextIOWrapper)."""
    try:
        with open(path, "rb", buffering=0) as file:
            text = file.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def check_declared(todo: list[Migration], env: Environment, *, rollback: bool = False) -> None:
    """The parser's gate, for exactly what is about to run (the pending migrations, or
    the rollbacks): every statement is classified with PostgreSQL's own grammar
    (engine.sqlparse: DO blocks, function bodies and the calls of those that destroy,
    EXECUTE of a constant), and a destructive one in a script that does not declare
    `-- shipshape:destructive` is refused (exit 3) before anything runs. What the grammar
    cannot read (dynamic EXECUTE, another language) counts as destructive. SQL that does
    not parse is a template error (exit 5). Only what runs is parsed, so a run with
    nothing to do parses nothing. The runtime guard (engine.guard) checks again, inside
    each migration's transaction, what the SQL really did.
    """
    if not todo:
        return
    from shipshape.engine import sqlparse

    for migration in todo:
        sql = migration.rollback_sql if rollback else migration.sql
        path = migration.rollback_path if rollback else migration.path
        try:
            found = sqlparse.destructive_effects(sql)
        except sqlparse.SQLSyntaxError as exc:
            raise ConfigError(
                f"{path}:{exc.line} (line of the rendered SQL) is not valid PostgreSQL: "
                f"{exc.message}. Nothing was changed. Fix the template; "
                f"`invoke render --env {env.name}` shows the SQL it renders to."
            ) from None
        declared = migration.rollback_destructive if rollback else migration.destructive
        if found and not declared:
            raise Refused(
                f"{path} contains destructive SQL but does not declare "
                f"`-- shipshape:destructive`; shipshape never runs undeclared destructive SQL, "
                f"and nothing was changed. Remove the statement, or, after review, declare it "
                f"with a first line `-- shipshape:destructive`; then rerun "
                f"`invoke {'db.rollback' if rollback else 'deploy'} --env {env.name}`:",
                details=[f"{path}:{statement.line}: {effect}: "
                         f"{_first_line(statement.text)}" for statement, effect in found],
            )


def _first_line(statement: str, width: int = 100) -> str:
    """A statement for a message: its first line, marked when there is more."""
    lines = statement.strip().splitlines() or [""]
    more = len(lines) > 1 or len(lines[0]) > width
    return lines[0][:width] + (" ..." if more else "")


# --- status against the history ---------------------------------------------------

def status(migrations: list[Migration], history: dict[int, dict]) -> list[Entry]:
    """Compare the code's migrations with the history table, version by version."""
    by_version = {m.version: m for m in migrations}
    entries = []
    for version in sorted(set(by_version) | set(history)):
        migration, row = by_version.get(version), history.get(version)
        if row is None:
            entries.append(Entry(version, migration.name, State.PENDING))
        elif migration is None:
            entries.append(Entry(version, row["name"], State.UNKNOWN,
                                 "applied to the database, but not in this code",
                                 row["applied_at"]))
        elif not row["success"]:
            entries.append(Entry(version, migration.name, State.FAILED,
                                 f"failed at {row['applied_at']:%Y-%m-%d %H:%M:%S} by "
                                 f"{row['applied_by']}", row["applied_at"]))
        elif row["name"] != migration.name or not same_as_applied(migration, row):
            entries.append(Entry(version, migration.name, State.CHECKSUM_MISMATCH,
                                 f"{migration.path} renders to {migration.checksum[:12]}, "
                                 f"the database ran {row['name']} with {row['checksum'][:12]}",
                                 row["applied_at"]))
        else:
            entries.append(Entry(version, migration.name, State.APPLIED, "", row["applied_at"]))
    return entries


def same_as_applied(migration: Migration, row: dict) -> bool:
    """Whether the history row ran this migration as the code has it now.

    The template's source decides, without rendering: an unchanged source counts as
    applied even when the env's settings (or an included macro) now render it
    differently; that is not an edit of the migration, and verify compares the schema
    those settings expect with the live one. A changed source is compared by what it
    renders to, so an edit that renders the same SQL (a Jinja comment) is no change."""
    if row.get("source_checksum") and row["source_checksum"] == migration.source_checksum:
        return True
    return row["checksum"] == migration.checksum


def renders_differently(migrations: list[Migration], history: dict[int, dict]) -> list[Migration]:
    """Applied migrations whose unchanged source renders differently for the env's
    settings now than when they ran (renders them: for verify, not for a no-op run)."""
    return [m for m in migrations
            if (row := history.get(m.version)) and row["success"] and row["name"] == m.name
            and row.get("source_checksum") == m.source_checksum
            and row["checksum"] != m.checksum]


def prepared(todo: list[Migration], env: Environment, *, rollback: bool = False
             ) -> list[Migration]:
    """Render and check every migration of todo now (prepare, then check_declared on
    what is about to run: its rollback when rollback), in order, so that a template
    error or undeclared destructive SQL stops the run before its first write."""
    for migration in todo:
        _ = migration.down if rollback else migration.up
    check_declared(todo, env, rollback=rollback)
    return todo


def current_version(history: dict[int, dict]) -> int | None:
    applied = [v for v, row in history.items() if row["success"]]
    return max(applied) if applied else None


def refuse_unsafe(entries: list[Entry], migrations: list[Migration], *, retry_failed: bool = False,
                  env_name: str | None = None) -> None:
    """Stop before applying anything when the history disagrees with the code (exit 3).
    env_name: the env, for the command the message names."""
    by_version = {m.version: m for m in migrations}
    unknown = [e for e in entries if e.state == State.UNKNOWN]
    if unknown:
        known_max = max(by_version, default=0)
        raise Refused(
            f"The database is ahead of the code: it has applied "
            f"{', '.join(f'{e.version:04d}_{e.name}' for e in unknown)}, which this code does "
            f"not contain (the code knows up to {known_max:04d}). Deploy the artifact that "
            f"contains those migrations; shipshape will not guess what they did.",
        )
    mismatched = [e for e in entries if e.state == State.CHECKSUM_MISMATCH]
    if mismatched:
        env_flag = f" --env {env_name}" if env_name else ""
        raise Refused(
            "Applied migrations were changed after they ran. Restore the files as they were "
            "and add a new migration for the change, or prove the edit changes nothing: "
            f"`invoke runbook.run edited-migration{env_flag}` does either:",
            details=[e.detail for e in mismatched],
        )
    failed = [e for e in entries if e.state == State.FAILED]
    if failed and not retry_failed:
        raise Refused(
            f"Migration {failed[0].version:04d}_{failed[0].name} failed part-way "
            f"({failed[0].detail}); it was non-transactional, so some statements may have "
            f"run. Inspect it, then run `invoke db.migrate --retry-failed`.",
        )


def plan(migrations: list[Migration], history: dict[int, dict], to: int | None = None) -> list[Migration]:
    """Migrations to apply, in order, up to and including `to`."""
    todo = [m for m in migrations if m.version not in history or not history[m.version]["success"]]
    if to is not None:
        if to not in {m.version for m in migrations} and to != 0:
            raise ConfigError(f"--to {to}: no migration has version {to:04d}.")
        todo = [m for m in todo if m.version <= to]
    return todo


def plan_phase(todo: list[Migration], phase: DeployPhase) -> tuple[list[Migration], list[Migration]]:
    """Split pending migrations into (run now, deferred to the contract phase).

    The expand phase defers every contract migration and applies the expand ones, also
    those numbered after a deferred contract migration: a release that stops using
    something ships its contract migration C before its own newest (expand) migration R,
    so that R can be applied, and the release ready, while C waits for the old replicas
    to go. An expand migration therefore never depends on an earlier contract one.
    Reads each pending migration's phase, so renders them (prepare)."""
    if phase != DeployPhase.EXPAND:
        return todo, []
    return ([m for m in todo if m.phase == Phase.EXPAND],
            [m for m in todo if m.phase == Phase.CONTRACT])


# --- the operations: migrate and rollback (the caller holds the migration lock) ---------

def migrate(conn: psycopg.Connection, env: Environment, loaded: list[Migration], *,
            to: int | None = None, retry_failed: bool = False, progress=None,
            before_commit: BeforeCommit | None = None, phase: DeployPhase = DeployPhase.ALL,
            before_contract=None) -> tuple[int | None, list[Migration]]:
    """Apply what is pending (up to `to`) of `phase`. Returns the version before, and
    what was applied. before_commit: see apply(). When contract migrations are pending,
    before_contract(them) runs before anything is applied, under the caller's lock, and
    raises to refuse them (default: releases.refuse_contract, which refuses while an
    older release runs). The lock check (engine.locksafety) runs first, on everything
    pending."""
    from shipshape.progress import Progress

    progress = progress or Progress()
    recorded = history.read_history(conn)
    refuse_unsafe(status(loaded, recorded), loaded, retry_failed=retry_failed, env_name=env.name)
    todo, _ = plan_phase(prepared(plan(loaded, recorded, to), env), phase)
    if not todo:  # nothing to parse, weigh or watch: none of that machinery is even imported
        history.ensure_history(conn)
        return current_version(recorded), todo
    from shipshape.engine import guard, indexes, locksafety, releases

    refuse_destructive(env, todo, rollback=False)
    locksafety.refuse(conn, env, todo)  # the live sizes: before anything is applied
    contracts = [m for m in todo if m.phase == Phase.CONTRACT]
    if contracts:  # before anything is applied: a refusal leaves no part done
        (before_contract or (lambda found: releases.refuse_contract(conn, env, found)))(contracts)
    watcher = guard.Guard(conn)  # one catalog snapshot for the run, kept up to date
    watcher.ready()  # may refuse: before anything is written
    history.ensure_history(conn)  # after every refusal: a refused run writes nothing
    half_built = indexes.any_invalid(conn)
    applied_by = db.operator()
    for migration in todo:
        with progress.step(f"migrate {migration.name}") as step:
            rebuilt = _drop_half_built(conn, env, migration, progress) if half_built else ""
            took = apply(conn, env, migration, applied_by=applied_by, watcher=watcher,
                         before_commit=before_commit, step=step)
            if not migration.backfill:  # a backfill's last note says its rows and batches
                step.note(f"{took} ms in SQL" + (f"; rebuilt {rebuilt}" if rebuilt else ""))
            elif rebuilt:
                step.note(f"rebuilt {rebuilt}")
    return current_version(recorded), todo


def _drop_half_built(conn, env: Environment, migration: Migration, progress) -> str:
    """Drop the INVALID indexes this migration creates (a killed or failed CREATE INDEX
    CONCURRENTLY left them), so that it builds them again; says so."""
    from shipshape.engine import indexes

    dropped = indexes.drop_invalid(conn, env, indexes.created(migration.sql))
    if not dropped:
        return ""
    names = indexes.describe(dropped)
    progress.info(f"{migration.name}: dropped the INVALID index {names}, left by an "
                  f"interrupted or failed CREATE INDEX CONCURRENTLY; the migration builds "
                  f"it again")
    return names


def rollback(conn: psycopg.Connection, env: Environment, loaded: list[Migration], to: int, *,
             progress=None) -> list[Migration]:
    """Roll back every applied migration above `to`, newest first."""
    from shipshape.progress import Progress

    progress = progress or Progress()
    recorded = history.read_history(conn)
    entries = status(loaded, recorded)
    refuse_unsafe(entries, loaded)
    todo = rollback_plan(loaded, recorded, to)
    check_declared(todo, env, rollback=True)
    refuse_destructive(env, todo, rollback=True)
    if not todo:
        return todo
    from shipshape.engine import guard

    watcher = guard.Guard(conn)  # one snapshot for the run, as migrate() keeps
    for migration in todo:
        with progress.step(f"rollback {migration.name}") as step:
            step.note(f"{rollback_one(conn, env, migration, watcher)} ms")
    return todo


def rollback_plan(loaded: list[Migration], history: dict[int, dict], to: int) -> list[Migration]:
    if to < 0:
        raise ConfigError(f"--to {to}: must be 0 (everything) or a version.")
    todo = sorted((m for m in loaded if m.version > to and m.version in history),
                  key=lambda m: m.version, reverse=True)
    irreversible.refuse_rollback(todo)
    return todo


def refuse_destructive(env: Environment, todo: list[Migration], *, rollback: bool) -> None:
    """Declared destructive SQL runs only where the env allows it."""
    flagged = [m for m in todo if (m.rollback_destructive if rollback else m.destructive)]
    if flagged and not env.allow_destructive:
        what = "rollback" if rollback else "migration"
        names = ", ".join(m.name for m in flagged)
        raise Refused(
            f"Env {env.name} forbids destructive statements, and the {what} of {names} is "
            f"destructive (it drops or rewrites data). Nothing was changed. After review, and "
            f"only deliberately, rerun with --set allow_destructive=true."
        )


# --- applying --------------------------------------------------------------------------

# A hook run inside a migration's transaction after its SQL and its history row, just
# before COMMIT: raising rolls both back. (The place for a check of what the migration did.)
BeforeCommit = Callable[[psycopg.Connection, "Migration"], None]
_SAVEPOINT = "shipshape_migration"


def apply(conn: psycopg.Connection, env: Environment, migration: Migration, *,
          applied_by: str, watcher: guard.Guard | None = None,
          before_commit: BeforeCommit | None = None, step=None) -> int:
    """Apply one migration with its history row; returns its duration in ms.

    Transactional migrations retry with backoff when lock_timeout expires; a SQL error
    rolls everything back and names the line of the rendered file (exit 6). A
    transactional migration is one round trip (see _in_one_transaction) unless
    before_commit is given: that runs after the SQL and the history row, before COMMIT.
    A backfill runs batch after batch (engine.backfill), each committed; before_commit
    runs after the last, before its history row. step: where a backfill notes progress.

    watcher: the runtime guard (engine.guard) of the run; migrate() and the shadow always
    pass one. A watched migration's check is the last statement of its message, after
    its history row and before COMMIT (and before the caller's before_commit), so a
    refusal rolls it back with its history row, at no round trip of its own. A
    non-transactional migration or a backfill is not watched (no one transaction to roll
    back).
    """
    if migration.backfill:
        if watcher:
            watcher.forget()  # unwatched: its batches commit one by one
        return db.retry_on_lock_timeout(
            conn, env, lambda: _apply_backfill(conn, env, migration, applied_by, before_commit, step),
            what=f"Backfill {migration.name}",
            then="deploy again; the committed batches stay done and it resumes.")
    if migration.transactional:
        def work():
            return _apply_in_transaction(conn, env, migration, applied_by, before_commit,
                                         watcher)
    else:
        if watcher:
            watcher.forget()  # unwatched: it may change anything

        def work():
            return _apply_autocommit(conn, env, migration, applied_by, before_commit)
    return db.retry_on_lock_timeout(
        conn, env, work,
        what=f"Migration {migration.name}", then="deploy again; nothing of it was applied.")


def _apply_in_transaction(conn, env, migration, applied_by, before_commit,
                          watcher: guard.Guard | None = None) -> int:
    from shipshape.engine import guard

    started = time.monotonic()
    # Before _head: the guard may read its snapshot now, if it keeps none from the run.
    watched = watcher.start(declared=migration.destructive) if watcher else False
    closing = _closing(f"{history.record_inline(migration, applied_by=applied_by)};", watched)
    head = _head(conn, env)
    try:
        _in_one_transaction(conn, head, migration.sql, closing,
                            before_commit=before_commit and (lambda: before_commit(conn, migration)))
    except psycopg.errors.LockNotAvailable:
        raise
    except psycopg.Error as exc:
        raise (guard.refusal(exc, what=f"Migration {migration.name}", path=migration.path,
                             command=f"invoke deploy --env {env.name}")
               or _sql_failed(conn, env, migration, migration.sql, exc, offset=len(head))
               ) from None
    return int((time.monotonic() - started) * 1000)


def _closing(history_statement: str, watched: bool) -> str:
    """What a migration's message sends after its SQL: its history statement, then, when
    the runtime guard watches it, the guard's check (which raises on a loss)."""
    from shipshape.engine import guard

    return f"{history_statement}\n{guard.CHECK}" if watched else history_statement


def _head(conn: psycopg.Connection, env: Environment) -> str:
    """What the message of a migration sends before its SQL: BEGIN (or, inside a caller's
    transaction, a savepoint) and the env's timeouts for this transaction only."""
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    opening = "BEGIN;" if idle else f"SAVEPOINT {_SAVEPOINT};"
    return f"{opening} {db.local_timeouts_sql(env)}\n"


def _in_one_transaction(conn: psycopg.Connection, head: str, body: str, closing: str, *,
                        before_commit=None) -> None:
    """head, body and closing (the history statement, and the runtime guard's check), and
    COMMIT, as ONE simple-query message: a single round trip, where BEGIN, two SET LOCALs,
    the SQL, the history row and COMMIT took six. The server stops at the first error and
    skips the rest of the message, COMMIT included; the transaction is then rolled back
    here. Error positions count from the start of the message: callers subtract len(head).

    before_commit(), when given, runs in the open transaction before COMMIT (then a
    second round trip commits). Inside a caller's transaction (head opens a savepoint) the
    savepoint is released instead of committing, as conn.transaction() would."""
    savepoint = not head.startswith("BEGIN")
    end = f"RELEASE SAVEPOINT {_SAVEPOINT};" if savepoint else "COMMIT;"
    message = f"{head}{body}\n;\n{closing}" + ("" if before_commit else f"\n{end}")
    was_autocommit = conn.autocommit
    if not savepoint:
        conn.autocommit = True  # so that psycopg sends no BEGIN of its own
    try:
        conn.execute(message)
        if before_commit:
            before_commit()
            conn.execute(end)
    except BaseException:
        if not conn.closed and conn.info.transaction_status in (
                psycopg.pq.TransactionStatus.INTRANS, psycopg.pq.TransactionStatus.INERROR):
            conn.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}"
                         if savepoint else "ROLLBACK")
        raise
    finally:
        if not savepoint and not conn.closed:
            conn.autocommit = was_autocommit


def _apply_backfill(conn, env, migration, applied_by, before_commit, step) -> int:
    """Batch after batch, each committed (engine.backfill); then the history row."""
    from shipshape.engine import backfill

    started = time.monotonic()
    backfill.run(conn, env, migration, step=step)
    duration = int((time.monotonic() - started) * 1000)
    with conn.transaction():
        if before_commit:
            before_commit(conn, migration)
        history.record(conn, migration, applied_by=applied_by, duration_ms=duration)
    return duration


def _apply_autocommit(conn, env, migration, applied_by, before_commit=None) -> int:
    """Statement by statement, as CREATE INDEX CONCURRENTLY requires. There is no
    transaction to commit: before_commit runs after the last statement, before the
    history row that says the migration is done."""
    started = time.monotonic()
    with db.autocommit(conn, env):
        for statement in split(migration.sql):
            try:
                conn.execute(statement)
            except psycopg.errors.LockNotAvailable:
                raise
            except psycopg.Error as exc:
                duration = int((time.monotonic() - started) * 1000)
                history.record(conn, migration, applied_by=applied_by, duration_ms=duration,
                               success=False)
                raise _sql_failed(conn, env, migration, migration.sql, exc, statement=statement,
                                  partial=True) from None
        if before_commit:
            before_commit(conn, migration)
        duration = int((time.monotonic() - started) * 1000)
        try:
            _refuse_invalid_indexes(conn, env, migration)
        except SQLFailed:
            history.record(conn, migration, applied_by=applied_by, duration_ms=duration,
                           success=False)
            raise
        history.record(conn, migration, applied_by=applied_by, duration_ms=duration)
    return duration


def _refuse_invalid_indexes(conn, env: Environment, migration: Migration) -> None:
    """A non-transactional migration is never recorded as a success while an index it
    creates is INVALID (e.g. CREATE INDEX CONCURRENTLY IF NOT EXISTS skipped a half-built
    one). A transactional CREATE INDEX builds a valid index or fails."""
    from shipshape.engine import indexes

    bad = indexes.invalid(conn, indexes.created(migration.sql))
    if bad:
        raise SQLFailed(
            f"Migration {migration.name} ran, but the index {indexes.describe(bad)} it creates "
            f"is INVALID (half-built), so it is not recorded as a success. Fix what stops the "
            f"build (duplicates under UNIQUE, a timeout), then run "
            f"`invoke deploy --env {env.name}`: it drops the INVALID index and builds it again.")


def rollback_one(conn: psycopg.Connection, env: Environment, migration: Migration,
                 watcher: guard.Guard | None = None) -> int:
    """Run a migration's rollback and delete its history row, in one transaction unless
    the rollback declares no-transaction (DROP INDEX CONCURRENTLY). The runtime guard
    (watcher: the run's, else one for this rollback alone) watches a transactional
    rollback that does not declare itself destructive."""
    from shipshape.engine import guard

    watcher = watcher or guard.Guard(conn)
    started = time.monotonic()

    head = ""

    def work():
        nonlocal head
        if migration.rollback_transactional:
            # Before _head: the guard may read its snapshot now.
            watched = watcher.start(declared=migration.rollback_destructive)
            head = _head(conn, env)
            _in_one_transaction(conn, head, migration.rollback_sql,
                                _closing(f"{history.delete_script(migration)};", watched))
        else:
            watcher.forget()  # unwatched: it may change anything
            with db.autocommit(conn, env):
                for statement in split(migration.rollback_sql):
                    conn.execute(statement)
                history.delete(conn, migration.version)

    try:
        db.retry_on_lock_timeout(conn, env, work, what=f"Rollback of {migration.name}",
                                       then="run the rollback again.")
    except psycopg.Error as exc:
        raise (guard.refusal(
                   exc, what=f"The rollback of {migration.name}", path=migration.rollback_path,
                   command=f"invoke db.rollback --env {env.name} --to {migration.version - 1}")
               or _sql_failed(conn, env, migration, migration.rollback_sql, exc,
                              path=migration.rollback_path, offset=len(head),
                              partial=not migration.rollback_transactional)) from None
    return int((time.monotonic() - started) * 1000)


# --- errors ----------------------------------------------------------------------------

def split(sql_text: str) -> list[str]:
    """Split a script into statements as PostgreSQL's grammar does (engine.sqlparse)."""
    from shipshape.engine import sqlparse

    return sqlparse.split(sql_text)


def _sql_failed(conn, env, migration, script, exc, *, statement=None, partial=False, path=None,
                offset=0):
    path = path or migration.path
    reason = db.server_message(exc, env)
    line = _error_line(conn, script, exc, statement, offset)
    where = f"{path} (rendered line {line})" if line else str(path)
    if partial and path == migration.path:
        tail = ("It is non-transactional: the statements before the failing one ran; its "
                "history row is marked failed. Fix it, then run `invoke db.migrate --retry-failed`.")
    elif partial:
        tail = ("The rollback is non-transactional: the statements before the failing one ran; "
                "the migration stays recorded as applied. Fix it and run the rollback again.")
    else:
        tail = "Its transaction was rolled back: nothing of it was applied."
    what = "Migration" if path == migration.path else "Rollback of"
    return SQLFailed(f"{what} {migration.name} failed at {where}: {reason}. {tail} "
                     f"See the rendered SQL with `invoke render --env {env.name}`.")


def _error_line(conn, script: str, exc: psycopg.Error, statement: str | None,
                offset: int = 0) -> int | None:
    """The 1-based line in the rendered script where the failing statement starts.
    offset: how many characters the message sent before the script."""
    position = exc.diag.statement_position
    if statement is not None:
        offset = script.find(statement)
        if position and offset >= 0:
            return script.count("\n", 0, offset + int(position) - 1) + 1
        return script.count("\n", 0, offset) + 1 if offset >= 0 else None
    if position:
        at = int(position) - 1 - offset
        # beyond the script: the history statement after it failed (no line of the file)
        return script.count("\n", 0, at) + 1 if 0 <= at <= len(script) else None
    return _locate_by_replay(conn, script)


def _locate_by_replay(conn: psycopg.Connection, script: str) -> int | None:
    """Errors without a position (constraint violations, RAISE): replay the statements
    one by one in a transaction that is always rolled back, to find the failing one."""
    offset = 0
    try:
        with conn.transaction(force_rollback=True):
            for statement in split(script):
                offset = script.find(statement, offset)
                try:
                    conn.execute(statement)
                except psycopg.Error:
                    return script.count("\n", 0, max(offset, 0)) + 1
    except psycopg.Error:
        return None
    return None


def failure(conn: psycopg.Connection, env: Environment, migration: Migration,
            exc: psycopg.Error, *, statement: str | None = None) -> SQLFailed:
    """The error (exit 6, file and rendered line) for exc, raised by migration's SQL where
    the caller ran it itself (the shadow, inside its one rolled-back transaction)."""
    return _sql_failed(conn, env, migration, migration.sql, exc, statement=statement)
