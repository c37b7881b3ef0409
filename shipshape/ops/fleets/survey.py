"""Read-only looks at every database of a fleet: the dry run's plan and fleet.status.

Both read each database in parallel (at most `parallel` connections at once) and change
nothing anywhere: no deploy, no journal, no report. An unreachable database is a line of
the answer, not an exception.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from shipshape import db
from shipshape.engine import history, identity, migrations
from shipshape.errors import ProblemsFound, ShipshapeError
from shipshape.ops import pipeline
from shipshape.ops.fleets.running import ERRORS, Prepared, journals
from shipshape.secrets import redact
from shipshape.text import one_line


def each(items, work, parallel: int) -> list:
    """work(item) for every item, at most `parallel` at once; results in item order."""
    with ThreadPoolExecutor(max_workers=max(1, parallel),
                            thread_name_prefix="fleet-survey") as pool:
        return list(pool.map(work, items))


def _connect(prepared: Prepared, name: str, purpose: str):
    target = prepared.targets[name]
    return db.connect(target, purpose=purpose,
                      connect_timeout=min(prepared.env.connect_timeout, 5))


# --- fleet.deploy --dry-run ------------------------------------------------------------------

@dataclass
class MemberPlan:
    name: str
    wave: str
    target: str
    status: str  # deploy | already | refused | unreachable | failed
    pending: list[str] = field(default_factory=list)
    exit_code: int = 0
    detail: str = ""


@dataclass
class DryRun:
    fleet: str
    env: str
    run_id: str
    shard: str | None
    parallel: int
    waves: list[tuple[str, list[MemberPlan]]]
    seeds: int
    checks: int
    phase: str = "all"

    @property
    def plans(self) -> list[MemberPlan]:
        return [p for _, plans in self.waves for p in plans]

    def as_dict(self) -> dict:
        return {"fleet": self.fleet, "env": self.env, "run_id": self.run_id,
                "phase": self.phase,
                "shard": self.shard, "parallel": self.parallel, "dry_run": True,
                "seed_files": self.seeds, "checks": self.checks,
                "waves": [{"name": n, "databases": plans} for n, plans in self.waves]}

    def check(self) -> None:
        """A database that could not be planned makes the dry run fail with its code."""
        bad = [p for p in self.plans if p.exit_code]
        if bad:
            raise ERRORS.get(bad[0].exit_code, ShipshapeError)(
                f"fleet {self.fleet} --dry-run: {len(bad)} database(s) would not deploy: "
                + "; ".join(f"{p.name} ({p.status}): {one_line(p.detail)[:300]}"
                            for p in bad[:5])
                + ". Nothing was changed.", result=self)


def dry_run(prepared: Prepared, *, parallel: int | None = None) -> DryRun:
    """What each database would run, wave by wave; changes nothing, writes nothing."""
    parallel = max(1, int(parallel or prepared.fleet.parallel))
    loaded = prepared.code.migrations
    env = prepared.env

    def look(pair) -> MemberPlan:
        wave, member = pair
        found = MemberPlan(member.name, wave.name, prepared.targets[member.name].describe(),
                           "deploy")
        try:
            with _connect(prepared, member.name, "fleet.deploy --dry-run") as conn:
                identity.check(conn, env, what="fleet.deploy")
                earlier = pipeline.deployed_by(conn, prepared.run_id)
                if earlier:
                    found.status = "already"
                    found.detail = f"already deployed by this run (deployment {earlier[0]})"
                    return found
                recorded = history.read_history(conn)
            migrations.refuse_unsafe(migrations.status(loaded, recorded), loaded)
            todo = migrations.prepared(migrations.plan(loaded, recorded), env)
            migrations.refuse_destructive(env, todo, rollback=False)
            found.pending, found.detail = _phase_plan(todo, prepared.phase)
        except ShipshapeError as exc:
            found.exit_code = exc.exit_code
            found.status = "unreachable" if exc.exit_code == 5 else (
                "refused" if exc.exit_code == 3 else "failed")
            found.detail = redact(str(exc))
        return found

    pairs = [(w, m) for w in prepared.waves for m in w.members]
    plans = dict(zip([m.name for _, m in pairs], each(pairs, look, parallel), strict=True))
    return DryRun(prepared.fleet.name, env.name, prepared.run_id,
                  str(prepared.shard) if prepared.shard else None, parallel,
                  [(w.name, [plans[m.name] for m in w.members]) for w in prepared.waves],
                  len(prepared.code.seeds), len(prepared.code.checks), prepared.phase)


def _phase_plan(todo: list, phase: str) -> tuple[list[str], str]:
    """(what this phase applies, the line saying so), as pipeline.deploy splits it."""
    if phase == migrations.DeployPhase.CONTRACT:
        names = [m.name for m in todo]
        return names, (f"contract phase: {len(names)} migration(s): {', '.join(names)}, once "
                       f"no replica of an older release is alive" if names
                       else "contract phase: no migration pending")
    now, later = migrations.plan_phase(todo, migrations.DeployPhase(phase))
    names = [m.name for m in now]
    detail = (f"{len(names)} migration(s): {', '.join(names)}" if names
              else "no migration pending") + "; then seed, verify"
    if later:
        detail += (f"; left for `--phase contract`: {', '.join(m.name for m in later)}")
    return names, detail


# --- fleet.status ------------------------------------------------------------------------------

@dataclass
class MemberStatus:
    name: str
    labels: dict
    target: str
    state: str  # current | behind | dirty | refused | unreachable
    env: str | None = None  # its stamp
    version: int | None = None
    pending: int = 0
    pending_contract: int = 0  # of pending: contract migrations (after the app's rollout)
    problems: list[str] = field(default_factory=list)  # migrations not cleanly applied
    last_deploy: dict | None = None
    this_run: int | None = None  # its deployments row of the current run
    detail: str = ""


@dataclass
class Status:
    fleet: str
    fleet_file: str
    env: str
    run_id: str
    shard: str | None
    code_version: int
    databases: list[MemberStatus]
    journals: list[dict]
    phase: str = "all"  # the run's (fleet.deploy --phase): whose "this run" and journals

    def next_phase(self) -> str:
        """The phase of the fleet.deploy that brings the behind databases forward: contract
        when that is all they lack, whatever run was looked at (an expand run that is done
        would otherwise be run again, for nothing)."""
        behind = [d for d in self.databases if d.state == "behind"]
        if behind and all(d.pending == d.pending_contract for d in behind):
            return "contract"
        return self.phase

    def count(self, state: str) -> int:
        return sum(d.state == state for d in self.databases)

    def summary(self) -> str:
        states = ("current", "behind", "dirty", "refused", "unreachable")
        deployed = sum(d.this_run is not None for d in self.databases)
        return (f"{len(self.databases)} database(s): "
                + ", ".join(f"{self.count(s)} {s}" for s in states if self.count(s))
                + f"; {deployed} deployed by run {self.run_id}")

    def as_dict(self) -> dict:
        return {"fleet": self.fleet, "fleet_file": self.fleet_file, "env": self.env,
                "run_id": self.run_id, "phase": self.phase, "shard": self.shard,
                "code_version": self.code_version,
                "summary": self.summary(), "databases": self.databases,
                "journals": self.journals}

    def check(self) -> None:
        bad = [d for d in self.databases if d.state != "current"]
        if bad:
            raise ProblemsFound(
                f"fleet {self.fleet}: {len(bad)} of {len(self.databases)} database(s) are not "
                f"at the code's version {self.code_version:04d} or not reachable: "
                + ", ".join(f"{d.name} ({d.state})" for d in bad[:10])
                + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
                + f". {self._next_command()}; `invoke fleet.doctor --fleet "
                  f"{self.fleet_file}` says what is wrong with a dirty one.", result=self)

    def _next_command(self) -> str:
        phase = self.next_phase()
        command = f"`invoke fleet.deploy --fleet {self.fleet_file} --phase {phase}`"
        if phase == "contract" and self.phase != "contract":
            return (f"What is pending is contract migrations only: once every replica runs "
                    f"the new release, {command} applies them")
        return f"{command} continues the run"


def status(prepared: Prepared, *, parallel: int | None = None) -> Status:
    """Each database's env stamp, version, pending migrations and last deploy. Read-only."""
    parallel = max(1, int(parallel or prepared.fleet.parallel))
    loaded = prepared.code.migrations
    env = prepared.env

    def look(member) -> MemberStatus:
        found = MemberStatus(member.name, member.labels,
                             prepared.targets[member.name].describe(), "current")
        try:
            with _connect(prepared, member.name, "fleet.status") as conn:
                stamp = identity.read(conn)
                found.env = stamp.name if stamp else None
                recorded = history.read_history(conn)
                if db.table_exists(conn, "shipshape.deployments"):
                    row = conn.execute(db.query("deployment_last")).fetchone()
                    if row:
                        found.last_deploy = dict(zip(
                            ("id", "result", "exit_code", "finished_at", "run"), row,
                            strict=True))
                earlier = pipeline.deployed_by(conn, prepared.run_id)
                found.this_run = earlier[0] if earlier else None
        except ShipshapeError as exc:
            found.state, found.detail = "unreachable", redact(str(exc))
            return found
        entries = migrations.status(loaded, recorded)
        found.version = migrations.current_version(recorded)
        pending = {e.version for e in entries if e.state == "pending"}
        found.pending = len(pending)
        found.pending_contract = sum(m.version in pending and m.phase == migrations.Phase.CONTRACT
                                     for m in loaded)
        found.problems = [f"{e.version:04d} {e.state}" for e in entries
                          if e.state not in ("applied", "pending")]
        if found.env is not None and found.env != env.name:
            found.state = "refused"
            found.detail = f"stamped {found.env}, the fleet is {env.name}"
        elif found.problems:
            found.state, found.detail = "dirty", ", ".join(found.problems)
        elif found.pending:
            found.state, found.detail = "behind", f"{found.pending} migration(s) pending"
        return found

    return Status(prepared.fleet.name, str(prepared.fleet.path), env.name, prepared.run_id,
                  str(prepared.shard) if prepared.shard else None,
                  max((m.version for m in loaded), default=0),
                  each(list(prepared.members), look, parallel), journals(prepared),
                  prepared.phase)
