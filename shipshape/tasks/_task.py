"""The one place where exceptions become exit codes, and the options every task shares.

Kept light: `invoke --list` imports this module, so nothing heavy is imported at the top.
"""

from __future__ import annotations

import functools
import sys

import invoke
from invoke.exceptions import Exit, ParseError
from invoke.program import Program

from shipshape.errors import ShipshapeError

HELP = {
    "env": "environment: local (default), dev, staging, prod, or a stack with a Pulumi.<name>.yaml",
    "dsn": "database URL; wins over DATABASE_URL and the env's own database",
    "sql_dir": "SQL tree to use (default: sql/)",
    "json": "print machine-readable JSON on stdout",
    "dry_run": "print the exact SQL it would run and change nothing",
    "set": "override a setting for this run, KEY=VALUE (repeatable), e.g. --set lock_timeout=2s",
    "yes": "confirm a change that needs confirmation outside local",
}


# The same short flag means the same thing in every task, or there is none: invoke's
# automatic letters made `-e` mean --env in one task and --set in another, and `-d`
# --dsn here but --dry-run there. `-n` for a dry run, as make and rsync have it.
SHORT_FLAGS = {"env": "e", "dsn": "d", "dry_run": "n", "json_": "j", "yes": "y"}


class Task(invoke.Task):
    """An invoke Task whose only short flags are SHORT_FLAGS."""

    def __init__(self, *args, **kwargs):
        kwargs["auto_shortflags"] = False
        super().__init__(*args, **kwargs)

    def arg_opts(self, name, default, taken_names):
        opts = super().arg_opts(name, default, taken_names)
        if name in SHORT_FLAGS:
            opts["names"].append(SHORT_FLAGS[name])
        return opts


def task(*args, help=None, iterable=(), required=(), **kwargs):
    """invoke.task, plus: a ShipshapeError prints one clear paragraph and exits with its code.

    Any other exception is a bug: invoke shows the traceback and exits 1. `required`
    names flags without which the task cannot run: missing, they are bad input (exit 5)
    with the task's usage, not invoke's parse error (exit 1).
    """
    merged_help = {**HELP, **(help or {})}

    def decorate(body):
        @functools.wraps(body)
        def run(c, *a, **kw):
            try:
                _require(body, required, kw)
                return body(c, *a, **kw)
            except ShipshapeError as exc:
                from shipshape.console import emit_json, print_error

                if kw.get("json_") and not exc.reported:
                    emit_json({"error": str(exc), "exit_code": exc.exit_code,
                               "findings": getattr(exc, "findings", [])})
                print_error(str(exc))
                raise Exit(code=exc.exit_code) from None
            except KeyboardInterrupt:
                print("interrupted", file=sys.stderr)
                raise Exit(code=130) from None

        names = set(body.__code__.co_varnames[: body.__code__.co_argcount])
        # invoke matches help keys to flag names: `set_` is the flag --set, help key "set".
        task_help = {k: v for k, v in merged_help.items() if k in names or f"{k}_" in names}
        return invoke.task(help=task_help, iterable=list(iterable), klass=Task, **kwargs)(run)

    if len(args) == 1 and callable(args[0]):  # bare @task
        return decorate(args[0])
    return decorate


def _require(body, required, kw) -> None:
    missing = [name for name in required if kw.get(name) in (None, "")]
    if not missing:
        return
    from shipshape.errors import ConfigError

    name = kw.get("name") if "name" not in missing else None
    flags = " ".join(f"--{m.replace('_', '-')} {m.upper()}" for m in missing)
    task_name = body.__module__.rsplit(".", 1)[-1] + "." + body.__name__.rstrip("_")
    raise ConfigError(f"Missing {', '.join('--' + m.replace('_', '-') for m in missing)}. "
                      f"Usage: invoke {task_name} {name + ' ' if name else ''}{flags} ...; "
                      f"see `invoke --help {task_name}`.")


def _usage(exc: ParseError) -> str:
    """invoke's parse error, plus the task's usage and where its help is."""
    context, said = exc.context, str(exc).rstrip("!.")
    if context is None or not context.name:
        return f"{said}. See `invoke --list` for the tasks."
    names = " ".join(f"<{a.name}>" for a in context.positional_args)
    return (f"{said}. Usage: invoke {context.name} {names + ' ' if names else ''}[options]; "
            f"see `invoke --help {context.name}`.")


def _parse_tasks_as_bad_input(parse_tasks):
    @functools.wraps(parse_tasks)
    def wrapper(self):
        try:
            return parse_tasks(self)
        except ParseError as exc:
            from shipshape.console import print_error

            print_error(_usage(exc))
            raise Exit(code=5) from None

    wrapper.shipshape = True
    return wrapper


# A missing task argument or an unknown flag is bad input, exit 5 like every other, with
# the usage. invoke's Program.run hard-codes exit 1 for a ParseError and has no hook, and
# its `invoke` entry point is the one our users type, so the task parse is wrapped here,
# when the collection loads (after the core flags, before the task flags are parsed).
if not getattr(Program.parse_tasks, "shipshape", False):
    Program.parse_tasks = _parse_tasks_as_bad_input(Program.parse_tasks)


def environment(env: str, set_=(), sql_dir: str | None = None):
    """Load env's settings (with --set overrides) and resolve the SQL tree."""
    from pathlib import Path

    from shipshape.errors import ConfigError
    from shipshape.paths import project_root
    from shipshape.settings import load_environment, parse_overrides

    environment = load_environment(env, overrides=parse_overrides(set_))
    directory = Path(sql_dir) if sql_dir else project_root() / "sql"
    if not directory.is_dir():
        raise ConfigError(f"--sql-dir {directory}: no such directory.")
    return environment, directory


def target(env: str, dsn: str | None, set_=(), sql_dir: str | None = None, *,
           start: bool = True):
    """Settings, SQL tree and the database (starting the embedded one for `local`, unless
    start is False: read-only commands never start or stop a server)."""
    from shipshape.targets import resolve_target

    environment_, directory = environment(env, set_, sql_dir)
    return resolve_target(environment_, dsn, start=start), directory


def progress(quiet: bool = False):
    """Progress lines on stderr; none when quiet (--json keeps the terminal for the data)."""
    from shipshape.console import ConsoleProgress
    from shipshape.progress import Progress

    return Progress() if quiet else ConsoleProgress()
