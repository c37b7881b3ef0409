"""up and down: the local stack (embedded PostgreSQL and the Avatar Creator API)."""

from __future__ import annotations

from shipshape.tasks._task import task


@task(iterable=["set_"], help={"port": "port for the API (default 8000)",
                               "env": "only local: dev, staging and prod are Pulumi stacks"})
def up(c, env="local", sql_dir=None, port=8000, set_=None):
    """Bring up the local stack: embedded PostgreSQL, deploy, then the API.

    The database is started (or reused) under .shipshape/local, deployed through every
    gate, and the API is started in the background once its migrations passed; its
    readiness is checked. Running it twice is harmless.
    """
    from shipshape import appserver, commands
    from shipshape.adapters import embedded
    from shipshape.console import print_table, print_text
    from shipshape.tasks._task import progress, target
    from shipshape.tasks.app import what_runs_where
    from shipshape.tasks.deploy import print_summary

    if env != "local":
        from shipshape.errors import ConfigError

        raise ConfigError(f"`invoke up` brings up the local stack only. {env} is a Pulumi "
                          f"stack: run `invoke infra.up --env {env}`.")
    tgt, sql_dir = target("local", None, set_, sql_dir)
    result = commands.deploy(tgt, sql_dir, progress=progress())
    print_summary(result)
    app = appserver.start(tgt.dsn, env="local", port=int(port))
    token = appserver.write_demo_token(tgt.dsn, env="local")
    database = embedded.local_status()
    print_table("what runs where", ["service", "where", "data"],
                [["PostgreSQL (embedded)", tgt.describe(), database.get("pgdata", "")],
                 *what_runs_where(app)])
    print_text(f"The demo user's API token is in {token} (mode 0600). Try:\n"
               f"  curl -H \"Authorization: Bearer $(cat {token})\" "
               f"{app.get('url', 'http://127.0.0.1:' + str(port))}/api/apps/avatar-creator/projects")


@task
def down(c):
    """Stop the local stack cleanly: the API, then the embedded PostgreSQL (data is kept)."""
    from shipshape import appserver
    from shipshape.adapters import embedded
    from shipshape.console import print_text

    print_text("stopped the app" if appserver.stop() else "the app was not running")
    stopped = embedded.stop_local()
    print_text("stopped the embedded PostgreSQL" if stopped else "the embedded PostgreSQL was not running")
