"""A fleet run: every database through the same pipeline.deploy, in waves, in parallel.

prepare() does everything that can fail before a database is touched (the fleet file,
the env, the SQL tree rendered once, every DSN resolved), so bad input is exit 5 with
nothing deployed. deploy() then runs the waves: the canary wave first, then the others,
each with at most `parallel` databases at once (threads: the work is waiting on
PostgreSQL). A canary failure stops the run after the databases already under way
finish; outside the canary wave the run stops once `max_failures` databases failed. A
stopped run starts no new database; the ones it did not reach are `not-run`.

Resuming needs no coordinator: every deploy carries the run id, and pipeline.deploy,
under the database's own deploy lock, does nothing to a database that already records
a successful deploy of this run. So the same command, after a crash, a kill or a
failure, continues the run, and N processes given disjoint shards (or, by mistake, the
same one) never deploy a database twice. A journal in the state dir
(fleets/<fleet>-<env>-<tree>[-shard-i-of-N].json) keeps the attempts and what each
database last did, for fleet.status and the reports; it is a record, never the
authority.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import traceback
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# Imported by their full names: `from shipshape.ops.fleets import plan` would import the
# package, whose __init__ imports this module back.
import shipshape.ops.fleets.plan as plan
import shipshape.ops.fleets.reports as reports
import shipshape.ops.fleets.spec as spec
from shipshape import db
from shipshape.engine import tree
from shipshape.errors import (
    Busy,
    ConfigError,
    ProblemsFound,
    Refused,
    ShipshapeError,
    SQLFailed,
)
from shipshape.ops import pipeline
from shipshape.paths import project_root, state_dir
from shipshape.progress import Progress, StepHandle
from shipshape.secrets import redact
from shipshape.settings import SETTINGS, Environment, load_environment
from shipshape.targets import Target
from shipshape.text import one_line

ERRORS = {2: ProblemsFound, 3: Refused, 4: Busy, 5: ConfigError, 6: SQLFailed}


# --- before anything runs ---------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    """A fleet ready to run: validated, rendered once, every DSN of this shard resolved."""

    fleet: spec.Fleet
    env: Environment
    sql_dir: Path
    code: tree.Tree
    checksum: str
    run_id: str
    shard: plan.Shard | None
    members: tuple[spec.Member, ...]
    targets: dict[str, Target]
    waves: tuple[plan.Wave, ...]
    phase: str = "all"   # what each database's deploy applies (deploy --phase)

    @property
    def journal(self) -> Path:
        shard = f"-shard-{self.shard.index}-of-{self.shard.count}" if self.shard else ""
        return (state_dir() / "fleets" / f"{self.fleet.name}-{self.env.name}-"
                f"{self.checksum[:12]}-{self.phase}{shard}.json")


def prepare(path: Path | str, *, sql_dir: Path | str | None = None,
            overrides: dict | None = None, shard: str | None = None,
            environ: dict | None = None, phase: str | None = None) -> Prepared:
    """Everything that can be wrong before a database is touched, checked: ConfigError
    (exit 5) for the fleet file, the env or its settings, the SQL tree, a --shard, a
    --phase, or a dsn_env that is not set (all of them named at once).

    `phase`: expand, contract or all, passed to each database's deploy; default, as
    deploy's, the env's deploy_phase. It is part of the run id: an expand run and the
    contract run after it are two runs, so the second is not `already` done."""
    environ = os.environ if environ is None else environ
    fleet = spec.load(path)
    share = plan.parse_shard(shard)
    env = load_environment(fleet.env, overrides=settings_for(fleet, overrides, environ))
    phase = pipeline.parse_phase(phase or env.default_phase, env.name)
    directory = Path(sql_dir) if sql_dir else (fleet.sql_dir or project_root() / "sql")
    if not directory.is_dir():
        raise ConfigError(f"The SQL tree {directory} (from "
                          f"{'--sql-dir' if sql_dir else fleet.path}) is not a directory.")
    code = tree.load(directory, env)
    checksum = tree.checksum(code)
    members = plan.select(fleet, share)
    targets, unset = {}, []
    for member in members:
        try:
            dsn = spec.resolve_dsn(fleet, member, environ)
        except ConfigError as exc:
            unset.append(exc.message)
            continue
        targets[member.name] = Target(env, dsn, f"fleet {fleet.name}: {member.name}")
    if unset:
        raise ConfigError(f"{len(unset)} database(s) of the fleet have no DSN; nothing was "
                          f"deployed. Export the variables and run the command again.",
                          details=unset)
    return Prepared(fleet, env, directory, code, checksum,
                    plan.run_id(fleet, env.name, checksum, phase), share, tuple(members),
                    targets, tuple(plan.waves(fleet, members)), str(phase))


def settings_for(fleet: spec.Fleet, overrides: dict | None, environ) -> dict:
    """The fleet file's settings sit where a stack file's do: below SHIPSHAPE_<SETTING>
    variables and --set (overrides), above the profile's defaults."""
    for key in overrides or {}:
        if key not in SETTINGS:
            raise ConfigError(f"Unknown setting {key!r} in --set. Known settings: "
                              f"{', '.join(SETTINGS)}.")
    kept = {k: v for k, v in fleet.settings.items()
            if environ.get(f"SHIPSHAPE_{k.upper()}") is None}
    return {**kept, **(overrides or {})}


# --- what a run records -------------------------------------------------------------------

# pending -> running -> deployed | already | failed; not-run when the run stopped first
FINAL = ("deployed", "already", "failed", "not-run")


@dataclass
class Outcome:
    """One database in one run."""

    name: str
    wave: str
    target: str  # redacted
    status: str = "pending"
    gate: str = ""  # the gate under way, or the one that failed
    exit_code: int | None = None
    from_version: int | None = None
    to_version: int | None = None
    deployment_id: int | None = None  # its shipshape.deployments row for this run
    duration_ms: int = 0
    detail: str = ""
    error: str = ""
    findings: list = field(default_factory=list)
    started: float | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in (
            "name", "wave", "status", "gate", "exit_code", "from_version", "to_version",
            "deployment_id", "duration_ms", "detail", "error", "target", "findings")}


@dataclass
class FleetRun:
    fleet: str
    fleet_file: str
    env: str
    sql_dir: str
    run_id: str
    tree_checksum: str
    shard: str | None
    parallel: int
    max_failures: int
    waves: list[tuple[str, list[str]]]
    outcomes: dict[str, Outcome]
    phase: str = "all"
    attempt: int = 1
    operator: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    outcome: str = "running"  # complete | halted | interrupted
    halted: str = ""
    exit_code: int = 0
    journal: str = ""
    report_md: Path | None = None
    report_json: Path | None = None

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes.values())

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.status == "failed"]

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in ("deployed", "already", "failed", "not-run")
                 if self.count(s)]
        return f"{len(self.outcomes)} database(s): " + (", ".join(parts) or "none run")

    def as_dict(self) -> dict:
        return {
            "fleet": self.fleet, "fleet_file": self.fleet_file, "env": self.env,
            "phase": self.phase, "sql_dir": self.sql_dir, "run_id": self.run_id, "tree_checksum": self.tree_checksum,
            "shard": self.shard, "parallel": self.parallel, "max_failures": self.max_failures,
            "attempt": self.attempt, "operator": self.operator, "started_at": self.started_at,
            "finished_at": self.finished_at, "outcome": self.outcome, "halted": self.halted,
            "exit_code": self.exit_code, "summary": self.summary(),
            "counts": {s: self.count(s) for s in FINAL},
            "waves": [{"name": n, "databases": names} for n, names in self.waves],
            "databases": [o.as_dict() for o in self.outcomes.values()],
            "journal": self.journal,
            "report": {"markdown": self.report_md, "json": self.report_json},
        }

    def check(self) -> None:
        """Raise the first failure's error (in fleet order), naming every failure."""
        if self.exit_code == 0:
            return
        failed = self.failures
        first = failed[0]
        names = "; ".join(f"{o.name} (exit {o.exit_code}, at {o.gate or 'start'}): "
                          f"{one_line(o.error)[:300]}" for o in failed[:5])
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        stop = f" The run stopped: {self.halted}." if self.halted else ""
        raise ERRORS.get(first.exit_code, ShipshapeError)(
            f"fleet {self.fleet}: {len(failed)} database(s) failed: {names}{more}.{stop} "
            f"{self.summary()}. Fix the cause and run the same command again: it continues "
            f"run {self.run_id}, and no database is deployed twice.", result=self)


class Watcher:
    """What a fleet run reports as it goes; silent here, the console draws it. Called
    from the worker threads: an implementation must be thread-safe."""

    def start(self, run: FleetRun) -> None:
        pass

    def wave(self, run: FleetRun, name: str) -> None:
        pass

    def update(self, run: FleetRun, outcome: Outcome) -> None:
        pass

    def finish(self, run: FleetRun) -> None:
        pass


class _GateProgress(Progress):
    """A database's pipeline progress, as the gate it is in."""

    def __init__(self, run: FleetRun, outcome: Outcome, watcher: Watcher):
        self.run, self.outcome, self.watcher = run, outcome, watcher
        self.depth = 0

    @contextmanager
    def step(self, label: str):
        if self.depth == 0:
            self.outcome.gate = label.split(":")[0]
            self.watcher.update(self.run, self.outcome)
        self.depth += 1
        try:
            yield StepHandle()
        finally:
            self.depth -= 1


# --- the run ------------------------------------------------------------------------------

def deploy(prepared: Prepared, *, parallel: int | None = None, max_failures: int | None = None,
           watcher: Watcher | None = None, reports_dir: Path | str | None = None) -> FleetRun:
    """Run the waves and write the run's report (reports/, Markdown and JSON). Returns the
    run (check() raises its failure); a KeyboardInterrupt stops it after the databases
    under way, writes the report, then propagates."""
    watcher = watcher or Watcher()
    fleet = prepared.fleet
    parallel = max(1, int(parallel or fleet.parallel))
    max_failures = max(1, int(max_failures or fleet.max_failures))
    run = FleetRun(
        fleet=fleet.name, fleet_file=str(fleet.path), env=prepared.env.name,
        sql_dir=str(prepared.sql_dir), run_id=prepared.run_id,
        tree_checksum=prepared.checksum, shard=str(prepared.shard) if prepared.shard else None,
        parallel=parallel, max_failures=max_failures,
        waves=[(w.name, [m.name for m in w.members]) for w in prepared.waves],
        outcomes={m.name: Outcome(m.name, w.name, prepared.targets[m.name].describe())
                  for w in prepared.waves for m in w.members},
        phase=prepared.phase, operator=db.operator(), journal=str(prepared.journal))
    journal = _Journal(prepared.journal, run)
    watcher.start(run)
    try:
        _run_waves(prepared, run, watcher, journal)
    except KeyboardInterrupt:
        run.outcome, run.halted = "interrupted", "interrupted by the operator"
        _finish(run, journal, watcher, reports_dir)
        raise
    _finish(run, journal, watcher, reports_dir)
    return run


def _finish(run: FleetRun, journal: _Journal, watcher: Watcher, reports_dir) -> None:
    for outcome in run.outcomes.values():
        if outcome.status in ("pending", "running"):
            outcome.status = "not-run"
    if run.outcome == "running":
        run.outcome = "halted" if run.halted else "complete"
    failed = run.failures
    run.exit_code = failed[0].exit_code if failed else 0
    run.finished_at = datetime.now(UTC)
    reports.write(run, reports_dir)
    journal.save()
    watcher.finish(run)


def _run_waves(prepared: Prepared, run: FleetRun, watcher: Watcher, journal: _Journal) -> None:
    failures = 0
    for wave in prepared.waves:
        if run.halted:
            break
        watcher.wave(run, wave.name)
        queue = deque(wave.members)
        with ThreadPoolExecutor(max_workers=run.parallel,
                                thread_name_prefix=f"fleet-{wave.name}") as pool:
            in_flight = {}
            try:
                while queue or in_flight:
                    while queue and len(in_flight) < run.parallel and not run.halted:
                        member = queue.popleft()
                        future = pool.submit(_deploy_one, prepared, run, member, watcher)
                        in_flight[future] = member
                    if not in_flight:
                        break
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        member = in_flight.pop(future)
                        outcome = run.outcomes[member.name]
                        if future.exception() is not None:  # a bug outside the deploy
                            outcome.status, outcome.exit_code = "failed", 1
                            outcome.error = redact(repr(future.exception()))
                        journal.save()
                        if outcome.status != "failed":
                            continue
                        failures += 1
                        if wave.canary and not run.halted:
                            run.halted = (f"canary {member.name} failed; no further "
                                          f"database was started")
                        elif failures >= run.max_failures and not run.halted:
                            run.halted = (f"{failures} database(s) failed (max_failures "
                                          f"{run.max_failures}); no further database was "
                                          f"started")
            except KeyboardInterrupt:
                run.halted = "interrupted"
                queue.clear()
                raise  # the pool's exit waits for the databases under way


def _deploy_one(prepared: Prepared, run: FleetRun, member: spec.Member,
                watcher: Watcher) -> None:
    """One database through pipeline.deploy; never raises (the outcome says it all)."""
    outcome = run.outcomes[member.name]
    outcome.status, outcome.started = "running", time.monotonic()
    watcher.update(run, outcome)
    result = None
    try:
        result = pipeline.deploy(prepared.targets[member.name], prepared.sql_dir,
                                 code=prepared.code, run_id=run.run_id,
                                 phase=prepared.phase, rerun=rerun_command(prepared),
                                 progress=_GateProgress(run, outcome, watcher))
        outcome.status = "already" if result.already else "deployed"
        outcome.exit_code = 0
        outcome.deployment_id = result.already or result.deployment_id
        outcome.detail = (f"already deployed by this run (deployment {result.already})"
                          if result.already else _detail(result))
    except ShipshapeError as exc:
        result = exc.result if isinstance(exc.result, pipeline.DeployResult) else None
        outcome.status, outcome.exit_code = "failed", exc.exit_code
        outcome.error = redact(str(exc))
        outcome.findings = list(getattr(exc, "findings", []) or [])
        if result is not None:
            outcome.deployment_id = result.deployment_id
            outcome.gate = next((g.name for g in result.gates if g.status == "failed"),
                                outcome.gate)
    except Exception as exc:  # noqa: BLE001 - a bug: this database fails with exit 1, the run goes on
        outcome.status, outcome.exit_code = "failed", 1
        outcome.error = redact(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    if result is not None:
        outcome.from_version, outcome.to_version = result.from_version, result.to_version
    outcome.duration_ms = int((time.monotonic() - outcome.started) * 1000)
    if outcome.status != "failed":
        outcome.gate = ""
    watcher.update(run, outcome)


def rerun_command(prepared: Prepared) -> str:
    """What a database's refused contract phase names: this fleet's run of it, never one
    database's `invoke deploy` (which, without the member's --dsn, deploys elsewhere)."""
    default = prepared.fleet.sql_dir or project_root() / "sql"
    sql_dir = ("" if Path(prepared.sql_dir).resolve() == Path(default).resolve()
               else f" --sql-dir {prepared.sql_dir}")
    shard = f" --shard {prepared.shard}" if prepared.shard else ""
    return (f"invoke fleet.deploy --fleet {prepared.fleet.path}{sql_dir}{shard} "
            f"--phase contract")


def _detail(result: pipeline.DeployResult) -> str:
    """What the gates that ran did (a skipped contract gate's note names `deploy`'s own
    command, not the fleet's: left out)."""
    notes = {g.name: g.detail for g in result.gates if g.status == pipeline.GateStatus.OK}
    return "; ".join(n for n in (notes.get(name) for name in ("migrate", "verify", "contract"))
                     if n)


# --- the journal ----------------------------------------------------------------------------

class _Journal:
    """The run's record in the state dir: its attempts and what each database last did."""

    def __init__(self, path: Path, run: FleetRun):
        self.path, self.run = path, run
        self.lock = threading.Lock()
        previous = read_journal(path)
        self.databases = previous.get("databases", {}) if previous else {}
        self.attempts = previous.get("attempts", []) if previous else []
        run.attempt = len(self.attempts) + 1
        self.attempts.append({"attempt": run.attempt, "started_at": run.started_at,
                              "operator": run.operator, "host": socket.gethostname(),
                              "pid": os.getpid(), "outcome": "running"})
        self.save()

    def save(self) -> None:
        """Write it whole (atomically): called from the run's own thread only."""
        from shipshape.text import to_jsonable

        run = self.run
        for outcome in run.outcomes.values():
            if outcome.status in ("deployed", "already", "failed"):
                self.databases[outcome.name] = {
                    "status": outcome.status, "exit_code": outcome.exit_code,
                    "deployment_id": outcome.deployment_id, "attempt": run.attempt}
        self.attempts[-1].update(outcome=run.outcome, finished_at=run.finished_at,
                                 halted=run.halted, summary=run.summary(),
                                 report=run.report_md)
        document = {"run_id": run.run_id, "fleet": run.fleet, "fleet_file": run.fleet_file,
                    "env": run.env, "tree_checksum": run.tree_checksum, "shard": run.shard,
                    "attempts": self.attempts, "databases": self.databases}
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            tmp.write_text(json.dumps(to_jsonable(document), indent=2, default=str) + "\n")
            tmp.replace(self.path)


def read_journal(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def journals(prepared: Prepared) -> list[dict]:
    """Every journal of this run (all shards), for fleet.status; an attempt still
    `running` whose process is gone from this host is `stopped` (killed, or crashed)."""
    pattern = (f"{prepared.fleet.name}-{prepared.env.name}-{prepared.checksum[:12]}-"
               f"{prepared.phase}*.json")
    found = [read_journal(p) for p in sorted((state_dir() / "fleets").glob(pattern))]
    for journal in filter(None, found):
        for attempt in journal.get("attempts", []):
            if (attempt.get("outcome") == "running"
                    and attempt.get("host") == socket.gethostname()
                    and not _alive(attempt.get("pid"))):
                attempt["outcome"] = "stopped"
    return [j for j in found if j]


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
