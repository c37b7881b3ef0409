"""app.start, app.stop, app.status: the Avatar Creator API in the background (local)."""

from __future__ import annotations

from shipshape.tasks._task import task

_HELP = {
    "port": "port to listen on (default 8000)",
    "host": "address to listen on (default 127.0.0.1)",
    "restart": "stop a running app first (to pick up changed code)",
}


@task(iterable=["set_"], help=_HELP)
def start(
    c, env="local", dsn=None, host="127.0.0.1", port=8000, set_=None, json_=False, restart=False,
    dry_run=False,
):
    """Start the API in the background (local) and wait until it is ready.

    Runs against env's database, waits for /health/ready, and writes the demo user's
    token to .shipshape/demo-token (mode 0600). Reuses a running app (--restart replaces
    it). For `local` only: other envs run the app as a container (`invoke infra.up`).
    --dry-run says what it would start or reuse, starting nothing (not the database).
    """
    from shipshape import appserver
    from shipshape.console import emit_json
    from shipshape.errors import ConfigError
    from shipshape.tasks._task import target

    if env != "local":
        raise ConfigError(
            f"app.start runs the app on this machine for the local env only; "
            f"{env} runs it as a container (`invoke infra.up --env {env}`)."
        )
    if dry_run:
        from shipshape.console import print_text

        tgt, _ = target(env, dsn, set_, None, start=False)
        running = appserver.status(check=False)
        if running["running"] and not restart:
            print_text(f"app: running at {running['url']} (pid {running['pid']}), would be reused")
        else:
            print_text(("app: would be stopped (pid {}) and ".format(running["pid"])
                        if running["running"] else "app: would be ")
                       + f"started on {host}:{port} against "
                       + (tgt.describe() if tgt.dsn else
                          "the embedded PostgreSQL, which would be started first"))
        print_text("Dry run: nothing was started.")
        return
    tgt, _ = target(env, dsn, set_, None)
    result = appserver.start(tgt.dsn, env=env, host=host, port=int(port), restart=restart)
    result["demo_token"] = str(appserver.write_demo_token(tgt.dsn, env=env))
    if json_:
        emit_json(result)
    else:
        print_app(result)


@task
def stop(c, dry_run=False):
    """Stop the background API cleanly (SIGTERM: in-flight requests finish).

    --dry-run says whether it would stop one, changing nothing."""
    from shipshape import appserver
    from shipshape.console import print_final, print_text

    if dry_run:
        running = appserver.status(check=False)
        print_text(f"would stop the app (pid {running['pid']})" if running["running"]
                   else "the app is not running: nothing to stop")
        return
    print_final("stopped the app" if appserver.stop() else "the app was not running")


@task
def status(c, json_=False):
    """Whether the app runs and is ready. Exit 2 when it is not running or not ready."""
    from shipshape import appserver
    from shipshape.console import emit_json
    from shipshape.errors import ProblemsFound

    result = appserver.status()
    if json_:
        emit_json(result)
    else:
        print_app(result)
    if not result["ready"]:
        raise ProblemsFound(
            f"The app is {'not ready: ' + result['detail'] if result['running'] else 'not running'}"
            f" (start it with `invoke app.start` or `invoke up`)."
        )


def print_app(result: dict) -> None:
    from shipshape.console import print_table

    print_table("what runs where", ["service", "where", "data"], what_runs_where(result))


def what_runs_where(result: dict) -> list[list[str]]:
    """Rows for `up`'s "what runs where" table (columns: service, where, data)."""
    state = "ready" if result.get("ready") else result.get("detail", "")
    if not result.get("running"):
        return [["Avatar Creator API", "not running", result.get("log") or ""]]
    rows = [
        [
            f"Avatar Creator API (pid {result.get('pid')})",
            f"{result.get('url')} ({state})",
            f"log: {result.get('log')}",
        ]
    ]
    if result.get("demo_token"):
        curl = (
            f'curl -H "Authorization: Bearer $(cat {result["demo_token"]})" '
            f"{result.get('url')}/api/apps/avatar-creator/projects"
        )
        rows.append(["demo user's token", f"{result['demo_token']} (mode 0600)", curl])
    return rows
