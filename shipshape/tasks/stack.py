"""up and down: the local stack (embedded PostgreSQL and the Avatar Creator API)."""

from __future__ import annotations

from shipshape.tasks._task import task


@task(iterable=["set_"], help={"port": "port for the API (default 8000)",
                               "env": "only local: dev, staging and prod are Pulumi stacks"})
def up(c, env="local", sql_dir=None, port=8000, set_=None, dry_run=False):
    """Bring up the local stack: embedded PostgreSQL, deploy, then the API.

    The database is started (or reused) under .shipshape/local, deployed through every
    gate, and the API is started in the background once its migrations passed; its
    readiness is checked. Running it twice is harmless. --dry-run says what it would
    start, reuse and deploy (the exact SQL when the server already runs), changing nothing.
    """
    from shipshape import appserver, commands
    from shipshape.adapters import embedded
    from shipshape.console import print_final, print_table, print_text
    from shipshape.tasks._task import progress, target
    from shipshape.tasks.app import what_runs_where
    from shipshape.tasks.deploy import print_summary

    if env != "local":
        from shipshape.errors import ConfigError

        raise ConfigError(f"`invoke up` brings up the local stack only. {env} is a Pulumi "
                          f"stack: run `invoke infra.up --env {env}`.")
    if dry_run:
        print_text(_up_plan(set_, sql_dir, int(port)))
        return
    tgt, sql_dir = target("local", None, set_, sql_dir)
    result = commands.deploy(tgt, sql_dir, progress=progress())
    print_summary(result)
    app = appserver.start(tgt.dsn, env="local", port=int(port))
    token = appserver.write_demo_token(tgt.dsn, env="local")
    database = embedded.local_status()
    print_table("what runs where", ["service", "where", "data"],
                [["PostgreSQL (embedded)", tgt.describe(), database.get("pgdata", "")],
                 *what_runs_where(app)])
    print_final(f"The demo user's API token is in {token} (mode 0600). Try:\n"
               f"  curl -H \"Authorization: Bearer $(cat {token})\" "
               f"{app.get('url', 'http://127.0.0.1:' + str(port))}/api/apps/avatar-creator/projects")


def _up_plan(set_, sql_dir, port: int) -> str:
    """What `up` would do, from what runs now; starts nothing."""
    from pathlib import Path

    from shipshape import appserver, commands
    from shipshape.adapters import embedded
    from shipshape.tasks._task import target

    database, app = embedded.local_status(), appserver.status(check=False)
    lines = ["up --dry-run: nothing below has been done."]
    if database["running"]:
        lines.append(f"PostgreSQL (embedded): running (pid {database['pid']}), reused; "
                     f"data in {database['pgdata']}")
    else:
        new = not (Path(database["pgdata"]) / "PG_VERSION").exists()
        lines.append(f"PostgreSQL (embedded): not running; would be "
                     f"{'created (initdb) and ' if new else ''}started in {database['pgdata']}")
    lines.append(f"app: running at {app['url']} (pid {app['pid']}), reused" if app["running"]
                 else f"app: would be started on 127.0.0.1:{port} once the deploy passed")
    if not database["running"]:
        lines.append("deploy: every gate; `invoke deploy --dry-run` prints its exact SQL "
                     "once the server runs")
        return "\n".join(lines)
    tgt, directory = target("local", None, set_, sql_dir, start=False)
    return "\n".join([*lines, "deploy:", commands.deploy_script(tgt, directory)])


@task
def down(c, dry_run=False):
    """Stop the local stack cleanly: the API, then the embedded PostgreSQL (data is kept).

    --dry-run says what it would stop, changing nothing."""
    from shipshape import appserver
    from shipshape.adapters import embedded
    from shipshape.console import print_final, print_text

    if dry_run:
        app, database = appserver.status(check=False), embedded.local_status()
        print_text("\n".join([
            f"would stop the app (pid {app['pid']})" if app["running"]
            else "the app is not running",
            f"would stop the embedded PostgreSQL (pid {database['pid']}); its data stays in "
            f"{database['pgdata']}" if database["running"]
            else "the embedded PostgreSQL is not running",
            "Dry run: nothing was stopped."]))
        return
    app = "stopped the app" if appserver.stop() else "the app was not running"
    database = ("stopped the embedded PostgreSQL (its data is kept)" if embedded.stop_local()
                else "the embedded PostgreSQL was not running")
    print_final(f"{app}; {database}.")
