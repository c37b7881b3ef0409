"""fleet.*: one SQL tree deployed to many databases listed in a fleet file."""

from __future__ import annotations

from shipshape.tasks._task import task

_HELP = {
    "fleet": "the fleet file (YAML): the databases, their DSNs or dsn_env, labels, env, sql_dir",
    "sql_dir": "SQL tree to use (default: the fleet file's sql_dir, else sql/)",
    "parallel": "databases handled at once (default: the fleet file's `parallel`, else 1)",
    "shard": "take the i-th of N shares of the fleet, e.g. 0/4 (a stable hash of the name)",
    "max_failures": "stop starting databases after this many failed (default: the fleet "
                    "file's, else 1); any canary failure stops the run",
    "reports_dir": "where the run's report goes (default: reports/, or SHIPSHAPE_REPORTS_DIR)",
    "dry_run": "show the waves and what each database would run; change nothing",
    "long_transaction": "report sessions holding locks in a transaction open longer than "
                        "this (default 60s)",
    "runbooks_dir": "directory of runbook YAML files (default: runbooks/)",
    "phase": "what each database's deploy applies, as `deploy --phase`: expand, contract "
             "(refused, exit 3, while a replica of an older release is alive) or all. "
             "Default: the env's deploy_phase: all for local, else expand",
}


def _prepare(fleet, sql_dir, set_, shard, phase=None):
    from shipshape import commands
    from shipshape.settings import parse_overrides

    return commands.fleet_prepare(fleet, sql_dir=sql_dir, overrides=parse_overrides(set_),
                                  shard=shard, phase=phase)


def _count(flag: str, value):
    from shipshape.errors import ConfigError

    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"--{flag.replace('_', '-')} {value!r}: expected a whole number >= 1.")
    return number


@task(iterable=["set_"], required=["fleet"], help=_HELP)
def deploy(c, fleet=None, sql_dir=None, set_=None, parallel=None, shard=None,
           max_failures=None, dry_run=False, json_=False, reports_dir=None, phase=None):
    """Deploy one SQL tree to every database of a fleet, in waves; resumable.

    The canary wave first, then the rest, --parallel at a time; stops starting databases
    at the first failure (or after max_failures), at Ctrl-C or SIGTERM (exit 130). Each database runs the whole deploy
    (its own lock, env stamp, verify) of --phase: expand before the app rolls, contract
    after it (each phase is its own run). Run the same command again to continue a stopped
    run: a database already deployed by it is never deployed twice. Writes one report
    per run to reports/. Exit 0 when every database is deployed, else the first failed
    database's code (2 problems, 3 refused, 4 busy, 5 bad input or unreachable, 6 SQL).
    """
    from shipshape import commands
    from shipshape.console import ConsoleFleetWatcher, emit_json, print_fleet_summary, print_text
    from shipshape.errors import ShipshapeError

    prepared = _prepare(fleet, sql_dir, set_, shard, phase)
    parallel, max_failures = _count("parallel", parallel), _count("max_failures", max_failures)
    if not dry_run:
        _stop_on_sigterm()
    result = commands.fleet_deploy(prepared, parallel=parallel, max_failures=max_failures,
                                   dry_run=dry_run, reports_dir=reports_dir,
                                   watcher=None if json_ else ConsoleFleetWatcher())
    if json_:
        emit_json(result.as_dict())
    elif dry_run:
        print_text(render_dry_run(result))
    else:
        print_fleet_summary(result)
    try:
        result.check()
    except ShipshapeError as error:
        error.reported = json_
        raise


def _stop_on_sigterm() -> None:
    """SIGTERM (a CI cancel, a pod's end) stops a run as Ctrl-C does: no database is
    started, the ones under way finish, the report is written, exit 130."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def render_dry_run(plan) -> str:
    lines = [f"fleet.deploy --dry-run --phase {plan.phase}: {plan.fleet} ({plan.env}"
             + (f", shard {plan.shard}" if plan.shard else "") + f"), run {plan.run_id}; "
             f"nothing below has been run. Each database: its pending migrations, then "
             f"seed ({plan.seeds} file(s)) and verify ({plan.checks} check(s)), under its own "
             f"deploy lock; `invoke deploy --dry-run --env {plan.env} --dsn ...` prints one "
             f"database's exact SQL."]
    for number, (name, plans) in enumerate(plan.waves, 1):
        lines.append(f"\nwave {number}: {name} ({len(plans)} database(s), {plan.parallel} at "
                     f"a time{'; any failure stops the run' if name == 'canary' else ''})")
        for p in plans:
            mark = {"deploy": "·", "already": "✓"}.get(p.status, "✗")
            lines.append(f"  {mark} {p.name}: {p.detail}")
    return "\n".join(lines)


@task(iterable=["set_"], required=["fleet"], help={
    **_HELP, "phase": "the run to look at, as fleet.deploy's --phase: expand, contract or "
                      "all. Default: the env's deploy_phase: all for local, else expand"})
def status(c, fleet=None, sql_dir=None, set_=None, parallel=None, shard=None, json_=False,
           phase=None):
    """Each database of a fleet: env stamp, version, pending migrations, last deploy.

    Read-only. Also says which databases the current run (this tree, --phase) has
    deployed, and the run's attempts from its journal. Exit 0 when every database is at
    the code's version, 2 when any is behind, dirty, stamped otherwise or unreachable;
    then it names the fleet.deploy to run, with its phase.
    """
    from shipshape import commands
    from shipshape.console import emit_json, print_table, print_text
    from shipshape.errors import ShipshapeError

    prepared = _prepare(fleet, sql_dir, set_, shard, phase)
    result = commands.fleet_status(prepared, parallel=_count("parallel", parallel))
    if json_:
        emit_json(result.as_dict())
    else:
        rows = [[d.name, d.state, d.env or "", f"{d.version or 0:04d}", d.pending,
                 (f"#{d.last_deploy['id']} {d.last_deploy['result']} "
                  f"{d.last_deploy['finished_at']:%Y-%m-%d %H:%M}") if d.last_deploy else "",
                 "yes" if d.this_run else "", d.detail[:160]]
                for d in result.databases]
        print_table(f"fleet {result.fleet} ({result.env}): code at {result.code_version:04d}; "
                    f"{result.summary()}",
                    ["database", "state", "stamp", "version", "pending", "last deploy",
                     "this run", "detail"], rows)
        for journal in result.journals:
            last = (journal.get("attempts") or [{}])[-1]
            where = (f", pid {last.get('pid')} on {last.get('host')}"
                     if last.get("outcome") in ("running", "stopped") else "")
            print_text(f"run {journal.get('run_id')}, shard {journal.get('shard') or 'all'}: "
                       f"attempt {last.get('attempt')} {last.get('outcome')}{where} "
                       f"({last.get('summary', '')})")
    try:
        result.check()
    except ShipshapeError as error:
        error.reported = json_
        raise


@task(iterable=["set_"], required=["fleet"], help=_HELP)
def doctor(c, fleet=None, sql_dir=None, set_=None, parallel=None, shard=None, json_=False,
           long_transaction=None, runbooks_dir=None):
    """Doctor on every database of a fleet, findings aggregated across them. Read-only.

    "DRIFT_MISSING index x: 12 of 200 database(s)": each finding with the databases that
    have it, most common first, and the runbook that fixes it. Exit 0 when every database
    is healthy, 2 when not (an unreachable database is its DB_UNREACHABLE finding).
    """
    from shipshape import commands
    from shipshape.console import emit_json, print_text
    from shipshape.errors import ShipshapeError
    from shipshape.ops import fleets

    prepared = _prepare(fleet, sql_dir, set_, shard)
    result = commands.fleet_doctor(prepared, parallel=_count("parallel", parallel),
                                   runbooks_dir=runbooks_dir, long_transaction=long_transaction)
    if json_:
        emit_json(result.as_dict())
    else:
        print_text(fleets.render_text(result))
    try:
        result.check()
    except ShipshapeError as error:
        error.reported = json_
        raise
