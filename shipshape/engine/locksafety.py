"""The lock-safety check: each pending statement's lock, weighed against the live table.

A static linter (squawk, strong_migrations) knows that `CREATE INDEX` blocks writes; it
cannot know whether the table has ten rows or ten million. Here every statement of every
pending migration is parsed with PostgreSQL's grammar (engine.sqlparse, engine.lockrules:
the lock mode, and whether it scans or rewrites the table under it) and joined with the
target's live numbers: pg_class.reltuples, pg_total_relation_size and the sessions that
hold locks on the table now. A statement that scans or rewrites a table larger than the
env's thresholds (lock_check_max_rows, lock_check_max_mb; 0 turns a threshold off) under
a lock that blocks the application is refused before anything runs, with its safe
rewrite. A migration accepts a finding with `-- shipshape:lock-ok <rule> <reason>`: it
then runs, and the history records the acceptance (engine.history, column lock_ok).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg.rows import dict_row

from shipshape import db
from shipshape.engine import sqlparse
from shipshape.engine.lockrules import SAFE_REWRITES
from shipshape.errors import ConfigError, Refused
from shipshape.settings import Environment

DIRECTIVE = "lock-ok"


@dataclass(frozen=True)
class Size:
    """A relation's live numbers."""

    rows: int            # the planner's estimate; -1 when never analyzed
    bytes: int
    sessions: int        # other sessions holding a lock on it now
    oldest_seconds: int  # age of the oldest of their transactions


@dataclass
class LockFinding:
    """One lock a pending statement would take, with the table's size: db.lint's row."""

    migration: str
    line: int
    statement: str
    relation: str
    mode: str
    rule: str
    scans: bool
    rewrites: bool
    rows: int | None = None      # None: the table does not exist yet
    bytes: int | None = None
    sessions: int = 0
    oldest_seconds: int = 0
    over: list[str] = field(default_factory=list)  # the thresholds it passes
    accepted: str = ""           # the lock-ok reason, when the migration accepts it
    safe_rewrite: str = ""

    @property
    def refused(self) -> bool:
        return bool(self.over) and not self.accepted

    def describe(self) -> str:
        work = "rewrites" if self.rewrites else "scans" if self.scans else "holds"
        size = ("a table that does not exist yet" if self.rows is None else
                f"{_rows(self.rows)}, {_megabytes(self.bytes)}")
        busy = (f"; {self.sessions} other session(s) hold locks on it, the oldest "
                f"transaction {self.oldest_seconds}s old" if self.sessions else "")
        return (f"{self.migration} line {self.line}: takes {self.mode} on {self.relation} "
                f"({size}{busy}) and {work} it under that lock [{self.rule}]")


def parse_accepted(path, rendered: str, lines: list[str]) -> tuple[tuple[str, str], ...]:
    """The (rule, reason) pairs of a migration's `-- shipshape:lock-ok` directives."""
    accepted = []
    for line in lines:
        rule, _, reason = line.partition(" ")
        if rule not in SAFE_REWRITES:
            raise ConfigError(f"{path}: `-- shipshape:lock-ok {line}` names no lock rule; "
                              f"known: {', '.join(sorted(SAFE_REWRITES))}.")
        if not reason.strip():
            raise ConfigError(f"{path}: `-- shipshape:lock-ok {rule}` needs a reason after the "
                              f"rule, e.g. `-- shipshape:lock-ok {rule} table is empty in "
                              f"every env`; the history records it.")
        accepted.append((rule, reason.strip()))
    return tuple(accepted)


def findings(conn: psycopg.Connection, env: Environment, todo) -> list[LockFinding]:
    """Every blocking lock the migrations in `todo` would take, with live sizes and the
    env's verdict. Read-only: ends its transaction. A table that does not exist yet (a
    pending migration creates it) has no size: nobody else uses it, nothing is weighed."""
    found: list[LockFinding] = []
    for migration in todo:
        accepted = dict(migration.lock_ok)
        for statement in _flatten(sqlparse.classify(migration.sql)):
            for lock in statement.locks:
                found.append(LockFinding(
                    migration=migration.name, line=statement.line,
                    statement=" ".join(statement.text.split())[:160],
                    relation=lock.relation, mode=lock.mode, rule=lock.rule,
                    scans=lock.scans, rewrites=lock.rewrites, safe_rewrite=lock.safe_rewrite,
                    accepted=accepted.get(lock.rule, "")))
    sizes = _sizes(conn, {f.relation for f in found if f.relation})
    for finding in found:
        size = sizes.get(finding.relation)
        if size is None:
            continue
        finding.rows, finding.bytes = size.rows, size.bytes
        finding.sessions, finding.oldest_seconds = size.sessions, size.oldest_seconds
        finding.over = _over(finding, env)
    return found


def refuse(conn: psycopg.Connection, env: Environment, todo) -> list[LockFinding]:
    """Raise Refused (exit 3) when a finding passes the env's thresholds unaccepted;
    else return the findings (the accepted ones among them go to the history)."""
    found = findings(conn, env, todo)
    refused = [f for f in found if f.refused]
    if refused:
        first = refused[0]
        raise Refused(
            f"The lock check refuses {len(refused)} statement(s) on env {env.name}; nothing "
            f"was applied. {first.describe()}, which passes {', '.join(first.over)}: the "
            f"application's queries on {first.relation} wait for as long as that takes. "
            f"Safe rewrite: {first.safe_rewrite} If the lock is acceptable (a maintenance "
            f"window, a table nobody uses yet), say so in the migration: "
            f"`-- shipshape:lock-ok {first.rule} <reason>`. "
            f"`invoke db.lint --env {env.name}` lists every finding.",
            details=[f.describe() for f in refused[1:]])
    return found


def _over(finding: LockFinding, env: Environment) -> list[str]:
    """The env thresholds this lock passes; only a scan or rewrite under a lock is
    weighed (a catalog change is brief, and lock_timeout with retry bounds its wait)."""
    if not (finding.scans or finding.rewrites):
        return []
    over = []
    if env.lock_check_max_rows and finding.rows > env.lock_check_max_rows:
        over.append(f"lock_check_max_rows={env.lock_check_max_rows}")
    if env.lock_check_max_mb and finding.bytes > env.lock_check_max_mb * 1024 * 1024:
        over.append(f"lock_check_max_mb={env.lock_check_max_mb}")
    return over


def _flatten(statements):
    for statement in statements:
        yield statement
        yield from _flatten(statement.inner)


def _sizes(conn: psycopg.Connection, names: set[str]) -> dict[str, Size]:
    if not names:
        return {}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(db.query("relation_sizes"), {"names": sorted(names)}).fetchall()
    db.end_read(conn)
    return {r["name"]: Size(r["rows"], r["bytes"], r["sessions"], r["oldest_seconds"])
            for r in rows}


def _rows(rows: int) -> str:
    return "rows unknown (never analyzed)" if rows < 0 else f"{rows:,} rows"


def _megabytes(size: int | None) -> str:
    return f"{(size or 0) / 1024 / 1024:,.0f} MB"
