"""The deploy: preflight -> lock -> migrate -> seed -> verify -> app health -> contract
-> record.

Zero downtime orders the gates (issue #12): `migrate` applies the expand migrations,
which keep the running app release working; the new release rolls out (`app` checks it
is ready); `contract` applies the contract migrations, which break the old release, and
only when no replica of an older release is alive (engine.releases). `phase` picks the
part: expand (stops before contract), contract (only the contract gate), or all.

Each gate must pass before the next runs; the first failing gate stops the deploy with
its own exit code, and the attempt is recorded in shipshape.deployments when the
database can still be written.

A deploy may carry a run id (a fleet run names itself so): its deployments row records
it, and a deploy whose database already records a successful deploy of that run does
nothing else, decided under the deploy lock, so that two processes running the same
fleet never deploy one database twice.
"""

from __future__ import annotations

import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from shipshape import db
from shipshape.engine import history, identity, migrations, seeds, shadow, tree, verify
from shipshape.errors import ConfigError, ProblemsFound, ShipshapeError, SQLFailed
from shipshape.paths import project_root
from shipshape.progress import Progress
from shipshape.secrets import redact
from shipshape.targets import Target


class GateStatus(StrEnum):
    """Where a gate is; the deployments row and `deploy --json` show the value."""

    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class Gate:
    name: str
    status: GateStatus = GateStatus.PENDING
    duration_ms: int = 0
    detail: str = ""


@dataclass
class DeployResult:
    env: str
    target: str
    from_version: int | None = None
    to_version: int | None = None
    gates: list[Gate] = field(default_factory=list)
    findings: list = field(default_factory=list)
    exit_code: int = 0
    error: str = ""
    run_id: str | None = None
    deployment_id: int | None = None  # the shipshape.deployments row of this deploy
    # The deployments row of an earlier successful deploy of the same run: nothing was
    # done this time (the gates after `lock` are skipped).
    already: int | None = None
    phase: str = "all"


class _GateNote:
    """What a gate's body may say about itself: one detail line."""

    def __init__(self, gate: Gate, step):
        self.gate, self.step = gate, step

    def note(self, detail: str) -> None:
        self.gate.detail = detail
        self.step.note(detail)


GATES = ("preflight", "lock", "migrate", "seed", "verify", "app", "contract", "record")
Phase = migrations.DeployPhase


class _Run:
    """Book-keeping of the gates of one deploy."""

    def __init__(self, result: DeployResult, progress: Progress):
        self.result = result
        self.progress = progress
        self.gates = {name: Gate(name) for name in GATES}
        result.gates = list(self.gates.values())

    @contextmanager
    def gate(self, name: str, label: str | None = None):
        """Time a gate, show it as a progress step, and mark it ok or failed."""
        gate = self.gates[name]
        started = time.monotonic()
        with self.progress.step(label or name) as step:
            handle = _GateNote(gate, step)
            try:
                yield handle
            except BaseException as exc:
                gate.status = GateStatus.FAILED
                gate.detail = gate.detail or redact(str(exc).split("\n")[0][:200])
                raise
            finally:
                gate.duration_ms = int((time.monotonic() - started) * 1000)
        gate.status = GateStatus.OK

    def skip(self, name: str, why: str) -> None:
        self.gates[name].status = GateStatus.SKIPPED
        self.gates[name].detail = why


def deploy(target: Target, sql_dir: Path | str, *, progress: Progress | None = None,
           app_check=None, code: tree.Tree | None = None,
           run_id: str | None = None, phase: str | None = None,
           rerun: str | None = None) -> DeployResult:
    """Run every gate in order. Raises the failing gate's error after recording it.

    `code`: sql_dir already loaded for target's env (a fleet loads it once for all its
    databases). `run_id`: the run this deploy belongs to; when the database already
    records a successful deploy of it, nothing is done and `result.already` names it.
    `phase`: expand, contract or all (default: the env's deploy_phase). `rerun`: the
    command a refused contract phase names to run it again (default: `invoke deploy
    --env <env> --phase contract`; a fleet names its own)."""
    progress = progress or Progress()
    env = target.env
    phase = parse_phase(phase or env.default_phase, env.name)
    result = DeployResult(env=env.name, target=target.describe(), run_id=run_id, phase=phase)
    run = _Run(result, progress)
    started_at = datetime.now(timezone.utc)
    started = time.monotonic()
    conn = None
    # A run's deploy keeps the deploy lock until its deployments row is written: that row
    # is what another process of the same run checks under the lock.
    kept = ExitStack()
    try:
        with run.gate("preflight", "preflight: render, connect, check") as gate:
            code = code or tree.load(sql_dir, env)
            conn = db.connect(target, purpose="deploy")
            gate.note(_preflight(run, target, conn, code, phase))
        with ExitStack() as held:
            with run.gate("lock", "lock: wait for other deploys") as gate:
                held.enter_context(db.advisory_lock(conn, env.migration_lock_wait))
                identity.ensure(conn, env, what="deploy")
                if run_id and (earlier := deployed_by(conn, run_id)):
                    result.already, result.from_version, result.to_version = earlier
                gate.note(f"migration lock held; the database is {env.name}")
            if result.already:
                pass
            elif phase == Phase.CONTRACT:
                for name in ("migrate", "seed", "verify", "app"):
                    run.skip(name, "deploy --phase contract")
                _contract(run, conn, target, code, rerun)
            else:
                _migrate_seed_verify(run, conn, target, code)
            if run_id:
                kept = held.pop_all()
        if result.already:
            for name in ("migrate", "seed", "verify", "app", "contract", "record"):
                run.skip(name, f"already deployed by run {run_id} "
                               f"(shipshape.deployments id {result.already})")
            return result
        if phase != Phase.CONTRACT:
            _app(run, env, app_check)
        if phase == Phase.ALL:
            with db.advisory_lock(conn, env.migration_lock_wait):
                _contract(run, conn, target, code, rerun)
        elif phase == Phase.EXPAND:
            _skip_contract(run, conn, code, env.name)
    except ShipshapeError as exc:
        result.exit_code = exc.exit_code
        result.error = str(exc)
        if isinstance(exc, ProblemsFound):
            result.findings = exc.findings
        exc.result = result  # so the caller can still show the gates
        _record(run, conn, target, started_at, started)  # before the lock is released
        raise
    else:
        _record(run, conn, target, started_at, started)
    finally:
        _release(kept)
        _close(conn)
    return result


def _preflight(run: _Run, target: Target, conn, code: tree.Tree,
               phase: migrations.DeployPhase) -> str:
    """Check what can be checked before the lock, on the deploy's connection: nothing is
    locked, stamped or recorded yet. Returns the gate's note."""
    env = target.env
    version = db.server_version(conn)
    # Render what is pending (only that: a no-op deploy renders nothing), so that a
    # template error stops the deploy here, before the lock, the stamp or a row.
    pending = migrations.prepared(
        migrations.plan(code.migrations, history.read_history(conn)), env)
    # One sweep of a killed shadow build's leftovers for the whole deploy (the rehearsal
    # and verify's shadow come after it), read through the deploy's own connection, as is
    # the server version of the shadow cache's key.
    shadow.remove_leftovers(target, run.progress, conn=conn)
    rehearsal = _rehearse_seeds(target, code, pending, phase, run.progress, conn)
    return (f"PostgreSQL {version}; {len(code.migrations)} migrations, "
            f"{len(code.seeds)} seed files ({rehearsal})")


def _app(run: _Run, env, app_check) -> None:
    """The app gate: the env's app answers ready (a deploy that has no app_url skips it)."""
    if not env.app_url:
        run.skip("app", "no app_url for this env")
        return
    with run.gate("app", f"app: {env.app_url}/health/ready") as gate:
        if app_check is None:
            from shipshape.adapters.app_probe import require_ready as app_check
        app_check(env.app_url)
        gate.note("ready")


def parse_phase(value: str, env_name: str) -> migrations.DeployPhase:
    try:
        return Phase(value)
    except ValueError:
        raise ConfigError(f"--phase {value!r}: expected expand, contract or all, e.g. "
                          f"`invoke deploy --env {env_name} --phase expand`.") from None


def seeded_schema(loaded: list[migrations.Migration], pending: list[migrations.Migration]
                  ) -> list[migrations.Migration]:
    """The migrations whose schema the seed gate meets: all but the pending contract ones,
    which run after it (in `all` too)."""
    _, deferred = migrations.plan_phase(pending, Phase.EXPAND)
    return [m for m in loaded if m not in deferred]


def _rehearse_seeds(target: Target, code: tree.Tree, pending: list[migrations.Migration],
                    phase: migrations.DeployPhase, progress: Progress, conn) -> str:
    """Every seed row rehearsed, before anything is applied, in the shadow of the schema
    the seed gate will meet: a deploy never migrates a database it would then fail to seed.
    The seed gate runs before the contract migrations (in `all` too), so the pending ones
    are left out of that shadow; the contract phase seeds nothing. When a migration itself
    fails in the shadow, the migrate gate reports it as always (rolled back, recorded)."""
    if phase == Phase.CONTRACT:
        return "no seed in the contract phase"
    try:
        shadow.check_seeds(target, seeded_schema(code.migrations, pending), code.seeds,
                           progress, sweep=False, conn=conn)  # swept by the caller
    except SQLFailed:
        return "not rehearsed: a migration fails in the shadow"
    return "rehearsed"


def _migrate_seed_verify(run: _Run, conn, target: Target, code: tree.Tree) -> None:
    env = target.env
    result = run.result
    with run.gate("migrate") as gate:
        try:
            result.from_version, todo = migrations.migrate(conn, env, code.migrations,
                                                           progress=run.progress,
                                                           phase=Phase.EXPAND)
        except SQLFailed as exc:
            _point_to_baseline(exc, conn, target, code)
            raise
        result.to_version = max([m.version for m in todo] + [result.from_version or 0]) or None
        gate.note(f"{len(todo)} applied, at version {result.to_version or 0:04d}"
                  if todo else f"nothing to apply, at version {result.to_version or 0:04d}")
    with run.gate("seed") as gate:
        applied = seeds.apply(conn, env, code.seeds)
        inserted = sum(r.inserted for r in applied)
        updated = sum(r.updated for r in applied)
        gate.note(f"{len(applied)} files: {inserted} inserted, {updated} updated")
    with run.gate("verify") as gate:
        findings = verify.verify(conn, target, code.sql_dir, code=code, progress=run.progress,
                                 sweep=False)  # swept in preflight
        result.findings = findings
        route = _route(findings, env.name, code.sql_dir)
        verify.raise_if_problems(findings, route.command if route else None)
        warnings = [f for f in findings if f.severity != "error"]
        gate.note("clean" + (f", {len(warnings)} warning(s)" if warnings else ""))


def _contract(run: _Run, conn, target: Target, code: tree.Tree, rerun: str | None) -> None:
    """Apply the contract migrations (and whatever is pending after them), refused while
    a replica of a release they break is alive."""
    env = target.env
    result = run.result
    checked = []
    with run.gate("contract") as gate:
        def refuse(contracts):
            from shipshape.engine import releases

            checked.append(releases.refuse_contract(conn, env, contracts, rerun=rerun))

        before, todo = migrations.migrate(conn, env, code.migrations, progress=run.progress,
                                          phase=Phase.CONTRACT, before_contract=refuse)
        if run.gates["migrate"].status == GateStatus.SKIPPED:  # --phase contract
            result.from_version = before
        result.to_version = max([m.version for m in todo]
                                + [result.to_version or 0, before or 0]) or None
        contracts = [m for m in todo if m.phase == migrations.Phase.CONTRACT]
        gate.note(f"{len(contracts)} contract migration(s) applied ({checked[0]})" if contracts
                  else "no contract migration pending")


def _skip_contract(run: _Run, conn, code: tree.Tree, env_name: str) -> None:
    """The expand phase leaves the contract migrations for later: say which, and how."""
    recorded = history.read_history(conn)
    _, later = migrations.plan_phase(migrations.plan(code.migrations, recorded),
                                     Phase.EXPAND)
    if later:
        names = ", ".join(m.name for m in later)
        run.skip("contract", f"{names} wait(s) for the contract phase: once every replica "
                             f"runs a release built for {later[-1].version:04d} or later, "
                             f"`invoke deploy --env {env_name} --phase contract`")
    else:
        run.skip("contract", "no contract migration pending")


def _point_to_baseline(exc: SQLFailed, conn, target: Target, code: tree.Tree) -> None:
    """A migration failed on a database without history that holds objects anyway (the
    history table dropped, a database made by another tool): `relation "users" already
    exists` alone names no fix. Ask verify and the router which runbook adopts them, and
    add it to the message. Best effort: the SQL error stays the error."""
    try:
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        if any(row["success"] for row in history.read_history(conn).values()):
            return
        findings = verify.verify(conn, target, code.sql_dir, code=code)
        conn.rollback()
    except (psycopg.Error, ShipshapeError):
        return
    if not any(f.code == "DRIFT_UNEXPECTED" for f in findings):
        return
    route = _route(findings, target.env.name, code.sql_dir)
    if route and route.runbook:
        exc.message += (f" No migration is recorded in shipshape.history, yet the database "
                        f"holds objects they create: run `{route.command}`.")


def _route(findings: list, env_name: str, sql_dir: Path):
    """triage.route: the one command for the error findings, None when there is none.
    Routing reads the runbooks, so a clean verify does not even import them."""
    if not any(f.severity == "error" for f in findings):
        return None
    from shipshape.ops import triage

    return triage.route(findings, env_name,
                        command=lambda book: _runbook_command(book, env_name, sql_dir))


def _runbook_command(book, env_name: str, sql_dir: Path) -> str:
    """The runbook's command, with --sql-dir when the deploy used another SQL tree."""
    from shipshape.ops.runbooks.book import command as runbook_command

    default = Path(sql_dir).resolve() == (project_root() / "sql").resolve()
    return runbook_command(book, env_name, sql_dir=None if default else sql_dir)


def deployed_by(conn, run_id: str) -> tuple[int, int | None, int | None] | None:
    """This database's successful deploy of run_id, if any: (deployments id, from_version,
    to_version). Ends the read's transaction."""
    row = None
    if db.table_exists(conn, "shipshape.deployments"):
        row = conn.execute(db.query("deployment_of_run"), {"run": run_id}).fetchone()
    db.end_read(conn)
    return tuple(row) if row else None


def _record(run: _Run, conn, target: Target, started_at, started) -> None:
    """Write the deployments row; best effort when the database itself is the problem."""
    result = run.result
    failed = next((g.name for g in result.gates if g.status == GateStatus.FAILED), None)
    if conn is None:
        # say why: "database not reachable", whatever failed, sent people to check a
        # database that was fine (issue 11)
        why = redact((result.error or "").split("\n")[0])[:120]
        run.skip("record", f"no connection to record on: {failed or 'preflight'} failed"
                           + (f" ({why})" if why else ""))
        return
    if conn.closed or conn.broken:
        run.skip("record", "the connection to the database was lost")
        return
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        exists = db.table_exists(conn, "shipshape.deployments")
        if not exists:
            conn.rollback()
            run.skip("record", "nothing recorded before the history existed")
            return
        detail = {"gates": {g.name: g.status for g in result.gates},
                  "error": redact(result.error)[:2000]}
        if result.run_id:
            detail["run"] = result.run_id
        with run.gate("record") as gate:
            result.deployment_id = conn.execute(db.query("deployment_insert"), {
                "env": target.env.name, "operator": db.operator(), "started_at": started_at,
                "from_version": result.from_version, "to_version": result.to_version,
                "result": "ok" if failed is None else f"failed at {failed}",
                "exit_code": result.exit_code,
                "duration_ms": int((time.monotonic() - started) * 1000),
                "detail": Jsonb(detail),
            }).fetchone()[0]
            conn.commit()
            gate.note("recorded in shipshape.deployments")
    except psycopg.Error:
        run.skip("record", "could not write the deployments row")


def _release(kept: ExitStack) -> None:
    """Let go of a lock kept until the record; a broken connection has already let go."""
    try:
        kept.close()
    except psycopg.Error:
        pass


def _close(conn) -> None:
    if conn is not None and not conn.closed:
        conn.close()
