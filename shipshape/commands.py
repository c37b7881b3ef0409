"""One function per verb: resolve what it needs, connect, lock, plan, dry-run or act.

The tasks parse flags and print what these return; the Pulumi gate and the tests call
them directly (alembic's command.py is the model). Every verb that changes something has
a dry run built from the same plan it would apply, so what `--dry-run` prints is what
runs. A failure is a ShipshapeError carrying its exit code; a verb that finds problems
returns its result and raises ProblemsFound from `result.check()`, so the caller can
print the result first.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shipshape import db
from shipshape.engine import history, identity, migrations
from shipshape.errors import ProblemsFound, Refused
from shipshape.progress import Progress
from shipshape.settings import Environment
from shipshape.targets import Target

# Each verb imports the machinery only it needs, inside its function: `db.status` starts
# without importing runbooks, fleets, doctor, verify and the bundle (a no-op command is
# mostly start-up). The names below are for annotations only.
if TYPE_CHECKING:
    from shipshape.engine import locksafety, seeds
    from shipshape.engine.findings import Finding
    from shipshape.ops import doctor as doctor_
    from shipshape.ops import fleets, pipeline, runbooks, triage

# --- db.status ------------------------------------------------------------------------------

# db.status lists every migration up to this many; beyond, a summary (--all: every one).
STATUS_SUMMARY_FROM = 30
STATUS_LAST = 5


@dataclass(frozen=True)
class StatusResult:
    target: str
    env: str
    migrations: list[migrations.Entry]

    @property
    def problems(self) -> list[migrations.Entry]:
        return [e for e in self.migrations if e.state != "applied"]

    @property
    def counts(self) -> dict[str, int]:
        """How many migrations are in each state, in the order of migrations.State."""
        found = {state.value: 0 for state in migrations.State}
        for entry in self.migrations:
            found[entry.state] += 1
        return {state: count for state, count in found.items() if count}

    def summary(self, last: int = STATUS_LAST) -> list[migrations.Entry]:
        """What a summary shows: every migration that is not applied, and the last `last`
        applied ones, in version order. Everything when the list is short anyway."""
        if len(self.migrations) <= STATUS_SUMMARY_FROM:
            return list(self.migrations)
        applied = [e for e in self.migrations if e.state == migrations.State.APPLIED]
        shown = {id(e) for e in applied[-last:]} | {id(e) for e in self.problems}
        return [e for e in self.migrations if id(e) in shown]

    def check(self) -> None:
        if self.problems:
            raise ProblemsFound(
                f"{len(self.problems)} migration(s) not cleanly applied: "
                + ", ".join(f"{e.version:04d} {e.state}" for e in self.problems)
                + f". Run `invoke deploy --env {self.env}`.")


def status(target: Target, sql_dir: Path) -> StatusResult:
    """Every migration of the code and of the database, with its state. Read-only."""
    loaded = migrations.load(sql_dir, target.env)
    with db.connect(target, purpose="status") as conn:
        entries = migrations.status(loaded, history.read_history(conn))
    return StatusResult(target.describe(), target.env.name, entries)


# --- db.migrate, db.rollback ---------------------------------------------------------------

@dataclass(frozen=True)
class MigrateResult:
    env: str
    applied: list[migrations.Migration]
    version: int
    script: str = ""  # a dry run's psql script; empty when it ran


def _pending(conn, env, loaded: list[migrations.Migration], *, retry_failed: bool = False,
             to: int | None = None) -> list[migrations.Migration]:
    """What migrate would apply, after the same refusals it makes (edited, ahead, dirty,
    undeclared destructive SQL: migrations.prepared)."""
    recorded = history.read_history(conn)
    migrations.refuse_unsafe(migrations.status(loaded, recorded), loaded,
                             retry_failed=retry_failed, env_name=env.name)
    return migrations.prepared(migrations.plan(loaded, recorded, to), env)


@contextmanager
def _schema_change(target: Target, sql_dir: Path, verb: str):
    """The tree's migrations (rendered lazily) and a connection to a database that is
    target's env (identity checked): what db.migrate and db.rollback start from."""
    from shipshape.engine.render import Renderer

    renderer = Renderer(sql_dir, target.env)
    loaded = migrations.load(sql_dir, target.env, renderer)
    with db.connect(target, purpose=verb) as conn:
        identity.check(conn, target.env, what=f"db.{verb}")
        yield renderer, loaded, conn


def migrate(target: Target, sql_dir: Path, *, to: int | None = None, retry_failed: bool = False,
            dry_run: bool = False, progress: Progress | None = None) -> MigrateResult:
    """Apply pending migrations under the deploy lock, each in its own transaction."""
    with _schema_change(target, sql_dir, "migrate") as (renderer, loaded, conn):
        if dry_run:
            from shipshape.engine import bundle

            todo = _pending(conn, target.env, loaded, retry_failed=retry_failed, to=to)
            script = bundle.migrate_script(renderer, todo)
            return MigrateResult(target.env.name, todo, 0, script)
        with db.advisory_lock(conn, target.env.migration_lock_wait):
            before, applied = migrations.migrate(conn, target.env, loaded, to=to,
                                                 retry_failed=retry_failed, progress=progress)
    version = max((m.version for m in applied), default=before) or 0
    return MigrateResult(target.env.name, applied, version)


@dataclass(frozen=True)
class RollbackResult:
    env: str
    rolled_back: list[migrations.Migration]
    version: int
    script: str = ""


def rollback(target: Target, sql_dir: Path, to: int, *, yes: bool = False,
             dry_run: bool = False, progress: Progress | None = None) -> RollbackResult:
    """Roll back applied migrations above `to`, newest first; --yes outside local."""
    from shipshape.engine import bundle

    with _schema_change(target, sql_dir, "rollback") as (renderer, loaded, conn):
        if dry_run:
            todo = migrations.rollback_plan(loaded, history.read_history(conn), to)
            migrations.check_declared(todo, target.env, rollback=True)
            return RollbackResult(target.env.name, todo, to, bundle.rollback_script(renderer, todo))
        if not target.env.is_local and not yes:
            raise Refused(f"Rolling back {target.env.name} to {to:04d} changes its schema; "
                          f"review `--dry-run` first, then rerun with --yes.")
        with db.advisory_lock(conn, target.env.migration_lock_wait):
            done = migrations.rollback(conn, target.env, loaded, to, progress=progress)
        # where it is now, not --to: a database below --to stays where it was
        version = max(history.read_history(conn), default=0)
    return RollbackResult(target.env.name, done, version)


# --- db.lint --------------------------------------------------------------------------------

@dataclass(frozen=True)
class LintResult:
    target: str
    env: str
    findings: list[locksafety.LockFinding]

    @property
    def refused(self) -> list[locksafety.LockFinding]:
        return [f for f in self.findings if f.refused]

    def check(self) -> None:
        if self.refused:
            first = self.refused[0]
            raise ProblemsFound(
                f"{len(self.refused)} pending statement(s) would be refused by the lock check "
                f"on env {self.env}; first: {first.describe()}. Rewrite it as shown, or accept "
                f"it in the migration with `-- shipshape:lock-ok {first.rule} <reason>`.")


def lint(target: Target, sql_dir: Path) -> LintResult:
    """The lock each pending statement takes, weighed against the live tables. Read-only."""
    from shipshape.engine import locksafety

    loaded = migrations.load(sql_dir, target.env)
    with db.connect(target, purpose="lint") as conn:
        todo = _pending(conn, target.env, loaded)
        found = locksafety.findings(conn, target.env, todo)
    return LintResult(target.describe(), target.env.name, found)


# --- db.seed --------------------------------------------------------------------------------

def seed_script(env: Environment, sql_dir: Path, target: Target | None = None, *,
                progress: Progress | None = None) -> str:
    """The upserts seed would run (the same whatever rows are there), after rehearsing
    every row against the schema the migrations produce, in the shadow of target's server
    (an embedded scratch server without one): a value that does not fit is exit 5 naming
    file:line. Changes nothing."""
    from shipshape.engine import bundle, shadow, tree

    code = tree.load(sql_dir, env)
    if target is not None:
        shadow.check_seeds(target, code.migrations, code.seeds, progress)
    else:
        shadow.check_seeds_scratch(env, code.migrations, code.seeds, progress)
    return bundle.seed_script(code.seeds, env)


def seed(target: Target, sql_dir: Path) -> list[seeds.SeedResult]:
    """Upsert the env's declared seed rows under the deploy lock; never deletes."""
    from shipshape.engine import seeds

    declared = seeds.load(sql_dir, target.env)
    with db.connect(target, purpose="seed") as conn:
        with db.advisory_lock(conn, target.env.migration_lock_wait):
            identity.check(conn, target.env, what="db.seed")
            return seeds.apply(conn, target.env, declared)


# --- db.verify, db.baseline ----------------------------------------------------------------

@dataclass(frozen=True)
class VerifyResult:
    target: str
    findings: list[Finding]
    next: triage.Route | None = None  # the one command to run next (triage.route)
    # differences on objects the env declares unmanaged (engine.boundary): `--json` only
    ignored: list[dict] = field(default_factory=list)

    def check(self) -> None:
        if self.findings:
            hint = f" Next: `{self.next.command}`." if self.next else ""
            raise ProblemsFound(f"{len(self.findings)} finding(s) for {self.target}.{hint}",
                                findings=self.findings)


def verify(target: Target, sql_dir: Path, *, progress: Progress | None = None,
           command_options: dict | None = None) -> VerifyResult:
    """The database against the code: history, drift, seeds, data checks. Read-only.
    The result names the next command (command_options: the flags to repeat in it)."""
    from shipshape.engine import verify as verify_
    from shipshape.ops import runbooks, triage

    ignored: list[dict] = []
    with db.connect(target, purpose="verify") as conn:
        findings = verify_.verify(conn, target, sql_dir, progress=progress, ignored=ignored)
    options = command_options or {}
    route = triage.route(findings, target.env.name, runbooks_dir=options.get("runbooks_dir"),
                         command=lambda book: runbooks.command(book, target.env.name, **options))
    return VerifyResult(target.describe(), findings, route, ignored)


def baseline(target: Target, sql_dir: Path, version: int, *,
             progress: Progress | None = None, dry_run: bool = False
             ) -> list[migrations.Migration]:
    """Record migrations 1..version as applied, only after proving the schema equals them.
    dry_run: the same proof, and nothing written (not even the env's stamp)."""
    from shipshape.engine import baseline as baseline_
    from shipshape.engine import boundary

    loaded = migrations.load(sql_dir, target.env)
    declared = boundary.of(target.env, sql_dir)
    with db.connect(target, purpose="baseline") as conn:
        if dry_run:
            identity.check(conn, target.env, what="db.baseline")
            return baseline_.baseline(conn, target, loaded, version, progress=progress,
                                      dry_run=True, declared=declared)
        with db.advisory_lock(conn, target.env.migration_lock_wait):
            identity.ensure(conn, target.env, what="db.baseline")
            return baseline_.baseline(conn, target, loaded, version, progress=progress,
                                      declared=declared)


def baseline_from(target: Target, sql_dir: Path, tool: str, *,
                  progress: Progress | None = None, dry_run: bool = False
                  ) -> list[migrations.Migration]:
    """Baseline at the version another tool's history says is applied (mapped through the
    imported-from directives), after the same proof as `baseline`."""
    from shipshape.engine import baseline as baseline_
    from shipshape.engine import boundary
    from shipshape.engine.importers import foreign_history

    loaded = migrations.load(sql_dir, target.env)
    declared = boundary.of(target.env, sql_dir)
    with db.connect(target, purpose="baseline") as conn:
        if dry_run:
            identity.check(conn, target.env, what="db.baseline")
            version = foreign_history.baseline_version(conn, sql_dir, tool)
            return baseline_.baseline(conn, target, loaded, version, progress=progress,
                                      tolerate=foreign_history.tolerate(tool), dry_run=True,
                                      declared=declared)
        with db.advisory_lock(conn, target.env.migration_lock_wait):
            identity.ensure(conn, target.env, what="db.baseline")
            version = foreign_history.baseline_version(conn, sql_dir, tool)
            return baseline_.baseline(conn, target, loaded, version, progress=progress,
                                      tolerate=foreign_history.tolerate(tool),
                                      declared=declared)


# --- db.import ------------------------------------------------------------------------------

def import_tree(tool: str, path: Path, out: Path, *, dry_run: bool = False):
    """Convert another tool's migrations into out/migrations; --dry-run writes nothing."""
    from shipshape.engine.importers import common

    return common.convert(tool, Path(path), Path(out), dry_run=dry_run)


# --- deploy, render ---------------------------------------------------------------------------

def deploy(target: Target, sql_dir: Path, *, progress: Progress | None = None,
           app_check=None, phase: str | None = None) -> pipeline.DeployResult:
    """preflight -> lock -> migrate (expand) -> seed -> verify -> app -> contract -> record,
    or the part `phase` names (expand, contract, all; default: the env's deploy_phase). A
    failing gate raises its error with the partial result attached (`error.result`)."""
    from shipshape.ops import pipeline

    return pipeline.deploy(target, sql_dir, progress=progress, app_check=app_check,
                           phase=phase)


def deploy_script(target: Target, sql_dir: Path, *, phase: str | None = None) -> str:
    """Every statement deploy would run, in order, as one psql script. Changes nothing.
    The contract migrations come after seed and verify, as the deploy runs them."""
    from shipshape.engine import bundle, shadow, tree
    from shipshape.ops import pipeline

    env = target.env
    chosen = pipeline.parse_phase(phase or env.default_phase, env.name)
    code = tree.load(sql_dir, env)
    with db.connect(target, purpose="deploy --dry-run") as conn:
        identity.check(conn, env, what="deploy")
        todo = _pending(conn, env, code.migrations)
    migrations.refuse_destructive(env, todo, rollback=False)
    if chosen != migrations.DeployPhase.CONTRACT:  # the contract phase seeds nothing
        shadow.check_seeds(target, pipeline.seeded_schema(code.migrations, todo), code.seeds)
    expand, contract = migrations.plan_phase(todo, migrations.DeployPhase.EXPAND)
    if chosen == migrations.DeployPhase.CONTRACT:
        return "\n".join([
            f"-- deploy --dry-run --phase contract for {target.describe()}",
            f"-- {len(todo)} migration(s) pending; refused while a replica of an older "
            f"release is alive; nothing below has been run.",
            bundle.migrate_script(code.renderer, todo)])
    later = (["-- ==== contract (after the app rolls; refused while a replica of an older "
              "release is alive) ====", bundle.migrate_script(code.renderer, contract)]
             if chosen == migrations.DeployPhase.ALL and contract else
             [f"-- {len(contract)} migration(s) left for `invoke deploy --env {env.name} "
              f"--phase contract`"] if contract else [])
    parts = [
        f"-- deploy --dry-run --phase {chosen} for {target.describe()}",
        f"-- {len(todo)} migration(s) pending; nothing below has been run.",
        bundle.migrate_script(code.renderer, expand),
        "-- ==== seed ====",
        bundle.seed_script(code.seeds, env),
        "-- ==== verify (read-only, rolled back): history, schema against a shadow database,",
        "-- seed rows, and these data checks ====",
        *(f"-- {c.path.name}\n{c.sql.strip()}\n" for c in code.checks),
        *later,
    ]
    return "\n".join(parts)


def render(env: Environment, sql_dir: Path, out_dir: Path, *, dsn: str | None = None
           ) -> dict[str, Path]:
    """Write migrate.sql, rollback.sql, seed.sql and verify.sql for psql into out_dir.

    verify.sql needs the schema the migrations produce: a shadow built on --dsn's server,
    else on a throw-away embedded one."""
    from shipshape.engine import bundle, shadow, tree

    code = tree.load(sql_dir, env)
    expected = (shadow.shadow_snapshot(Target(env, dsn, "--dsn"), code.migrations) if dsn
                else shadow.scratch_snapshot(env, code.migrations))
    return bundle.write_bundle(out_dir, env, sql_dir, expected, code=code)


# --- doctor, runbook.run ----------------------------------------------------------------------

@dataclass(frozen=True)
class DoctorReport:
    diagnosis: doctor_.Diagnosis
    groups: list[triage.Group] = field(default_factory=list)
    env: str = "local"

    def check(self) -> None:
        if self.diagnosis.healthy:
            return
        from shipshape.ops import triage

        # Unmatched findings: doctor's own output lists each one's fix, so no hint that
        # sends the reader back to doctor.
        route = triage.first_route(self.groups, self.env)
        hint = f" Start with `{route.command}`." if route.runbook else ""
        raise ProblemsFound(
            f"doctor: {len(self.diagnosis.errors)} problem(s) on {self.diagnosis.target}.{hint}",
            findings=triage.tagged(self.groups))


def doctor(target: Target, sql_dir: Path, *, runbooks_dir: Path | str | None = None,
           long_transaction: str | None = None, command_options: dict | None = None,
           progress: Progress | None = None) -> DoctorReport:
    """Every check, read-only; the findings grouped by the runbook that fixes them, each
    group with the exact command (command_options: the flags to repeat in it)."""
    from shipshape.ops import doctor as doctor_
    from shipshape.ops import runbooks, triage

    books = runbooks.load(runbooks_dir, sql_dir=sql_dir)
    diagnosis = doctor_.diagnose(
        target, sql_dir, long_transaction=long_transaction or doctor_.DEFAULT_LONG_TRANSACTION,
        progress=progress)

    def command(book) -> str:
        return runbooks.command(book, target.env.name, long_transaction=long_transaction,
                                **(command_options or {}))

    return DoctorReport(diagnosis, triage.group(diagnosis.findings, books, command=command),
                        target.env.name)


def run_runbook(target: Target, sql_dir: Path, name: str, *, runbooks_dir=None,
                dry_run: bool = False, yes: bool = False, reason: str | None = None,
                confirm=None, long_transaction: str | None = None,
                command_options: dict | None = None, progress: Progress | None = None,
                show=None) -> runbooks.RunResult:
    """detect -> plan -> confirm -> steps -> verify -> report. A failing run raises its
    error with the run attached (`error.result`); see shipshape.ops.runbooks."""
    from shipshape.ops import runbooks

    with db.connect(target, purpose="runbook") as conn:
        identity.check(conn, target.env, what=f"runbook.run {name}")
    return runbooks.run(target, sql_dir, name, runbooks_dir=runbooks_dir, dry_run=dry_run,
                        yes=yes, reason=reason, confirm=confirm,
                        long_transaction=long_transaction, command_options=command_options,
                        progress=progress, show=show)


def stamp(target: Target, *, previous: str, yes: bool = False, reason: str = "",
          dry_run: bool = False) -> str:
    """Re-stamp a database as target's env. Deliberate only: --from must name the stamp it
    has now, and --yes confirms. Returns the previous stamp. dry_run: the same checks,
    nothing written."""
    with db.connect(target, purpose="stamp") as conn:
        with db.advisory_lock(conn, target.env.migration_lock_wait):
            found = identity.read(conn)
            now = found.name if found else "(none)"
            if now != previous:
                raise Refused(f"The database is `{now}`, not `{previous}`: nothing was changed. "
                              f"Name the stamp it has now: `--from {now}`.")
            if dry_run:
                return now
            if not yes:
                raise Refused(f"Re-stamping a `{now}` database as `{target.env.name}` changes "
                              f"which safety rules apply to it. Rerun with --yes.")
            identity.stamp(conn, target.env.name, by=db.operator(), reason=reason)
    return now


# --- fleet.deploy, fleet.status, fleet.doctor --------------------------------------------------

def fleet_prepare(fleet_file: Path | str, *, sql_dir: Path | str | None = None,
                  overrides: dict | None = None, shard: str | None = None,
                  phase: str | None = None) -> fleets.Prepared:
    """The fleet file read, the tree rendered once and every DSN of the shard resolved;
    any problem is exit 5 before a database is touched. `phase`: what each database's
    deploy applies (default: the env's deploy_phase, as `deploy`)."""
    from shipshape.ops import fleets

    return fleets.prepare(fleet_file, sql_dir=sql_dir, overrides=overrides, shard=shard,
                          phase=phase)


def fleet_deploy(prepared: fleets.Prepared, *, parallel: int | None = None,
                 max_failures: int | None = None, dry_run: bool = False,
                 reports_dir: Path | str | None = None,
                 watcher: fleets.Watcher | None = None) -> fleets.FleetRun | fleets.DryRun:
    """Deploy every database of the fleet (this shard of it) through pipeline.deploy, in
    waves; resumes its run. A dry run reads each database's plan and changes nothing,
    writing no report. `result.check()` raises the first failure's error."""
    from shipshape.ops import fleets

    if dry_run:
        return fleets.dry_run(prepared, parallel=parallel)
    return fleets.deploy(prepared, parallel=parallel, max_failures=max_failures,
                         watcher=watcher, reports_dir=reports_dir)


def fleet_status(prepared: fleets.Prepared, *, parallel: int | None = None) -> fleets.Status:
    """Each database's stamp, version, pending migrations and last deploy. Read-only."""
    from shipshape.ops import fleets

    return fleets.status(prepared, parallel=parallel)


def fleet_doctor(prepared: fleets.Prepared, *, parallel: int | None = None, runbooks_dir=None,
                 long_transaction: str | None = None) -> fleets.FleetDiagnosis:
    """Doctor on each database, findings aggregated by code and object. Read-only."""
    from shipshape.ops import fleets

    return fleets.diagnose(prepared, parallel=parallel, runbooks_dir=runbooks_dir,
                           long_transaction=long_transaction)
