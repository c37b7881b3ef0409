"""The migration gate: what Pulumi runs between the database and the app.

The gate is shipshape's own deploy (migrate -> seed -> verify, `commands.deploy`) run
against the database Pulumi just made healthy, followed by one step of its own: the app
role, created NOLOGIN by migration 0001, gets LOGIN and its password only once verify has
passed. So the app cannot connect to a database that failed a gate, and the app container,
which depends on the gate, is not created or updated when the gate fails.

This module is plain library code, testable against PostgreSQL without Pulumi:

- `checksums(env, sql_dir)`: what the gate's result depends on — the rendered migrations,
  the env's seed rows, the rendered data checks. They are the gate resource's inputs, so
  Pulumi re-runs the gate exactly when one of them changes.
- `run(target, sql_dir, app_password=...)`: the gate itself; raises the failing gate's
  ShipshapeError (verify: ProblemsFound), which fails the Pulumi update.
- `provider_diff` / `provider_apply`: what infra/components/gate.py's dynamic provider
  calls, with the resource's plain-dict properties.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from shipshape.errors import OldReleaseRunning
from shipshape.secrets import register_secret
from shipshape.settings import Environment, with_settings
from shipshape.targets import Target

# The properties whose change re-runs the gate. The SQL tree's path is not one of them: the
# same tree checked out elsewhere (a CI runner, a laptop) renders to the same checksums.
# `database_id` is the identity of the database resource (its container's id): a recreated
# database is an empty one, and must be migrated and seeded again even though nothing in the
# SQL tree changed. The superuser DSN is not watched: a rotated superuser password changes
# nothing the gate did.
WATCHED = ("env", "checksums", "database_id", "app_role")
SECRET_PROPS = ("admin_dsn", "app_password")
# What the gate keeps in its outputs (the state Pulumi diffs the next run against): never the
# superuser DSN nor the app password, which are inputs only (kept secret there). A changed
# app password is detected through a salted PBKDF2 verifier of it, as PostgreSQL keeps one.
OUTPUTS = WATCHED + ("app_password_check", "schema_version", "applied", "gates", "app_login",
                     "deferred")
_PBKDF2_ITERATIONS = 200_000


def checksums(env: Environment, sql_dir: Path | str) -> dict[str, dict[str, str]]:
    """sha256 of every rendered migration, seed file (its rows for env) and data check.

    Independent of where the tree is on disk. Rendering errors raise as they do in a
    deploy (ConfigError, exit 5), so a broken template fails `pulumi preview` already.
    """
    from shipshape.engine import tree

    return tree.checksums(tree.load(sql_dir, env))


@dataclass
class GateResult:
    """What one run of the gate did."""

    env: str
    schema_version: int
    applied: list[str] = field(default_factory=list)   # migrations applied by this run
    gates: dict[str, str] = field(default_factory=dict)  # gate -> "status: detail"
    app_role: str = ""
    app_login: bool = False
    # The contract gate's refusal while an older release still runs: it defers, and runs
    # again at the next update (provider_diff), instead of failing this one.
    deferred: str = ""


def run(target: Target, sql_dir: Path | str, *, app_password: str | None = None,
        progress=None) -> GateResult:
    """migrate -> seed -> verify against target, then let the app role log in.

    Raises the failing gate's ShipshapeError; the app role is then left as it was (NOLOGIN
    on a new database). The deploy's own `app` gate is skipped: the app starts after this.
    """
    from shipshape import commands, db
    from shipshape.engine import history

    if app_password:
        register_secret(app_password)
    env = with_settings(target.env, app_url="")
    target = Target(env, target.dsn, target.source)
    before = _applied_versions(target)
    try:
        result = commands.deploy(target, sql_dir, progress=progress)
    except OldReleaseRunning as refused:
        if env.deploy_phase != "contract":
            raise
        return GateResult(env=env.name, schema_version=max(before, default=0),
                          gates={"contract": "deferred"}, app_role=env.app_role,
                          deferred=str(refused))
    with db.connect(target, purpose="gate") as conn:
        recorded = history.read_history(conn)
    applied = [row["name"] for version, row in sorted(recorded.items())
               if row["success"] and version not in before]
    gate = GateResult(
        env=env.name,
        schema_version=result.to_version or 0,
        applied=applied,
        gates={g.name: f"{g.status}: {g.detail}".rstrip(": ") for g in result.gates},
        app_role=env.app_role,
    )
    if app_password:
        enable_app_login(target, env.app_role, app_password)
        gate.app_login = True
    return gate


def _applied_versions(target: Target) -> set[int]:
    from shipshape import db
    from shipshape.engine import history

    with db.connect(target, purpose="gate") as conn:
        return {v for v, row in history.read_history(conn).items() if row["success"]}


def enable_app_login(target: Target, role: str, password: str) -> None:
    """Give the app role LOGIN and its password, as a SCRAM verifier computed here.

    libpq hashes the password on this side (PQencryptPasswordConn), so neither the
    statement nor the server's log ever holds the plain password.
    """
    from psycopg import sql

    from shipshape import db
    from shipshape.errors import ConfigError

    register_secret(password)
    with db.connect(target, purpose="gate: app role", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", [role]).fetchone() is None:
            raise ConfigError(
                f"The app role {role} does not exist on {target.describe()}: the migrations "
                f"create it (sql/migrations/0001_users). Run `invoke deploy --env "
                f"{target.env.name}` and check that app_role is the role they create.")
        verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
        conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(verifier.decode())))


# --- what the dynamic provider calls --------------------------------------------------

def provider_diff(olds: dict, news: dict) -> list[str]:
    """The watched properties that differ; an unknown new value (preview) counts as changed.

    olds are the gate's last outputs (provider_apply's), news its new inputs."""
    changed = [key for key in WATCHED if olds.get(key) != news.get(key)]
    if olds.get("deferred"):  # a contract gate that deferred runs again
        changed.append("deferred")
    if not password_matches(olds.get("app_password_check"), news.get("app_password")):
        changed.append("app_password")
    return changed


def password_check(password: str | None, *, salt: bytes | None = None) -> str:
    """A salted PBKDF2-SHA256 verifier of the app password ("" when there is none)."""
    import base64
    import os

    if not password:
        return ""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _PBKDF2_ITERATIONS)
    return (f"pbkdf2-sha256${_PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def password_matches(check: str | None, password) -> bool:
    """Whether `check` is a verifier of `password`; False for anything that is not a string
    (an unknown value during preview), so that it counts as changed."""
    import base64
    import hmac

    if not isinstance(password, str) or not isinstance(check, str):
        return not password and not check
    if not password or not check:
        return password == check
    try:
        _, iterations, salt, digest = check.split("$")
        again = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(again, base64.b64decode(digest))


def provider_apply(props: dict) -> dict:
    """Run the gate for a resource's properties; returns its outputs.

    props: env (the stack's name), settings (the env's settings and its profile, as
    Environment.context() gives them),
    sql_dir, checksums, database_id, admin_dsn, app_role, app_password. The outputs are
    OUTPUTS: no secret among them.
    """
    from shipshape.settings import SETTINGS, load_environment

    sql_dir = Path(props["sql_dir"])
    settings = {k: v for k, v in (props.get("settings") or {}).items() if k in SETTINGS}
    settings["app_role"] = props.get("app_role") or settings.get("app_role", "avatar_app")
    # env is the stack's name; its profile travels with the settings (no stack file here)
    env = load_environment(props["env"], overrides=settings, config_dir=sql_dir,
                           profile=(props.get("settings") or {}).get("profile"))
    current = checksums(env, sql_dir)
    if props.get("checksums") and current != props["checksums"]:
        from shipshape.errors import Refused

        raise Refused(
            f"The SQL tree at {sql_dir} changed after the Pulumi program computed the "
            f"gate's inputs (its checksums differ); nothing was applied. Run the update "
            f"again so that the recorded checksums are those of what runs.")
    result = run(Target(env, props["admin_dsn"], "Pulumi migration gate"), sql_dir,
                 app_password=props.get("app_password") or None)
    return provider_outputs(props, result)


def provider_outputs(props: dict, result: GateResult) -> dict:
    """The gate resource's outputs: the watched inputs (to diff the next run against), a
    verifier of the app password, and what the run did. Nothing secret."""
    outs = {key: props.get(key) for key in WATCHED}
    outs.update(app_password_check=password_check(props.get("app_password")),
                schema_version=result.schema_version, applied=result.applied,
                gates=result.gates, app_login=result.app_login, deferred=result.deferred)
    return outs


# --- the Kubernetes gate Job's last step -----------------------------------------------

APP_PASSWORD_VARIABLE = "APP_DB_PASSWORD"


def main(argv: list[str] | None = None, environ: dict | None = None) -> int:
    """`python -m shipshape.gate app-login`: what the Kubernetes gate Job runs after its
    `invoke deploy --env <stack>` init container passed (infra/components/kubernetes/gate.py).

    There is no invoke task for it on purpose: it is the gate's own step, never an
    operator's. Reads DATABASE_URL (the superuser DSN), SHIPSHAPE_PROFILE, the app role from
    SHIPSHAPE_APP_ROLE as every setting, and the password from APP_DB_PASSWORD, all from
    the Job's Secret; prints nothing secret; exits with the shipshape exit code.
    """
    import os
    import sys

    from shipshape.errors import ConfigError, ShipshapeError
    from shipshape.secrets import redact, register_dsn
    from shipshape.settings import load_environment

    argv = sys.argv[1:] if argv is None else argv
    environ = os.environ if environ is None else environ
    if argv != ["app-login"]:
        print("usage: python -m shipshape.gate app-login", file=sys.stderr)
        return 5
    try:
        dsn, password = environ.get("DATABASE_URL"), environ.get(APP_PASSWORD_VARIABLE)
        if not dsn or not password:
            raise ConfigError(f"app-login needs DATABASE_URL and {APP_PASSWORD_VARIABLE} (the "
                              f"gate Job takes both from its Secret).")
        register_dsn(dsn)
        register_secret(password)
        env = load_environment(environ.get("SHIPSHAPE_PROFILE", ""), environ=environ)
        target = Target(env, dsn, "DATABASE_URL")
        enable_app_login(target, env.app_role, password)
    except ShipshapeError as exc:
        print(redact(str(exc)), file=sys.stderr)
        return exc.exit_code
    print(f"app role {env.app_role} may log in on {target.describe()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
