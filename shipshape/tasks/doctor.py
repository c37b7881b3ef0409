"""doctor: every check, findings grouped by the runbook that fixes them."""

from __future__ import annotations

from shipshape.tasks._task import target, task

_HELP = {
    "long_transaction": "report sessions holding locks in a transaction open longer than "
                        "this (default 60s)",
    "runbooks_dir": "directory of runbook YAML files (default: runbooks/)",
}


@task(iterable=["set_"], help=_HELP)
def doctor(c, env="local", dsn=None, sql_dir=None, json_=False, set_=None,
           long_transaction=None, runbooks_dir=None):
    """Run every check and name the runbook that fixes each finding. Read-only.

    Checks connection health, sessions that hold locks for too long or block others,
    the migration history, drift against a shadow database, seed rows, data checks, and
    the app's /health/ready when the env has an app_url. Prints the findings grouped by
    runbook, in the order to run them, each with the exact command. Exit 0 when healthy,
    2 when not (an unreachable database is a finding too).
    """
    from shipshape import commands
    from shipshape.console import emit_json, print_text
    from shipshape.errors import ProblemsFound
    from shipshape.ops import triage
    from shipshape.tasks._task import progress

    tgt, directory = target(env, dsn, set_, sql_dir, start=False)
    report = commands.doctor(tgt, directory, runbooks_dir=runbooks_dir,
                             long_transaction=long_transaction,
                             command_options={"sql_dir": sql_dir, "runbooks_dir": runbooks_dir},
                             progress=progress(quiet=json_))
    if json_:
        emit_json(triage.as_json(report.diagnosis, report.groups))
    else:
        print_text(triage.render_text(report.diagnosis, report.groups))
    try:
        report.check()
    except ProblemsFound as error:
        error.reported = json_  # the JSON document above is the output: no second one
        raise
