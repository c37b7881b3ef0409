"""Verify: one operation that turns every disagreement between code and database into
findings. Never trusts that a step ran: it checks the history, compares the live catalog
with a shadow database built from the same rendered migrations, compares seed rows with
their declarations, and runs the data checks. It never writes to the target.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from shipshape import db
from shipshape.adapters import embedded
from shipshape.engine import catalog, history, migrations, seeds, tree
from shipshape.engine.findings import Finding
from shipshape.errors import ProblemsFound
from shipshape.progress import Progress
from shipshape.targets import Target

CATALOG_FORMAT = 1  # bump when catalog.snapshot's shape changes, to invalidate caches


def verify(conn: psycopg.Connection, target: Target, sql_dir: Path, *,
           progress: Progress | None = None, code: tree.Tree | None = None) -> list[Finding]:
    """Every finding for target's database, read-only. `code` is sql_dir already loaded
    for target's env (a deploy has it from its preflight)."""
    progress = progress or Progress()
    env = target.env
    code = code or tree.load(sql_dir, env)
    loaded = code.migrations
    findings: list[Finding] = []
    recorded = history.read_history(conn)
    with progress.step("history") as step:
        findings += history_findings(migrations.status(loaded, recorded), env.name)
        step.note(f"{len(recorded)} applied")
    with progress.step("schema against a shadow database") as step:
        applied = [m for m in loaded if m.version in recorded and recorded[m.version]["success"]]
        expected = shadow_snapshot(target, applied, progress)
        actual = db.read_only(conn, lambda: catalog.snapshot(conn))
        drift = catalog.diff(expected, actual)
        findings += drift_findings(drift, env.name)
        step.note(f"{len(drift)} difference(s)")
    with progress.step("seed rows") as step:
        results = db.read_only(conn, lambda: seeds.check(conn, code.seeds))
        findings += seed_findings(results, env.name)
        step.note(f"{sum(r.ok for r in results)} of {sum(r.total for r in results)} rows equal")
    with progress.step("data checks") as step:
        findings += db.read_only(conn, lambda: check_findings(conn, code.checks))
        step.note(f"{len(code.checks)} check(s)")
    return findings


def raise_if_problems(findings: list[Finding]) -> None:
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise ProblemsFound(
            f"Verify found {len(errors)} problem(s); the database does not match the code. "
            f"First: {errors[0].object}: {errors[0].message} Fix: {errors[0].fix}",
            findings=findings,
        )


# --- findings from each source ----------------------------------------------------------

def history_findings(entries: list[migrations.Entry], env_name: str) -> list[Finding]:
    codes = {
        "pending": ("MIGRATION_PENDING", "is in the code but not applied",
                    f"invoke deploy --env {env_name}"),
        "failed": ("MIGRATION_FAILED", "failed part-way",
                   f"invoke db.migrate --env {env_name} --retry-failed"),
        "checksum-mismatch": ("MIGRATION_CHECKSUM", "was changed after it was applied",
                              "restore the applied file; put the change in a new migration"),
        "unknown": ("MIGRATION_UNKNOWN", "is applied but missing from this code",
                    "deploy the artifact that contains it (the database is ahead)"),
    }
    findings = []
    for entry in entries:
        if entry.state in codes:
            code, what, fix = codes[entry.state]
            detail = f" ({entry.detail})" if entry.detail else ""
            findings.append(Finding(code, "error", f"migration {entry.name}",
                                    f"Migration {what}{detail}.", fix))
    return findings


def drift_findings(differences, env_name: str) -> list[Finding]:
    codes = {"missing": "DRIFT_MISSING", "unexpected": "DRIFT_UNEXPECTED", "changed": "DRIFT_CHANGED"}
    fixes = {
        "missing": (f"`invoke deploy --env {env_name}` if a migration is pending; otherwise "
                    f"restore it through a new migration, never by hand"),
        "unexpected": "add a migration that creates it, or one that drops it",
        "changed": "align it through a new migration",
    }
    return [Finding(codes[d.change], "error", f"{d.kind} {d.name}", d.describe() + ".",
                    fixes[d.change]) for d in differences]


def seed_findings(results, env_name: str) -> list[Finding]:
    findings = []
    for result in results:
        if result.error:
            code = "SEED_TABLE_MISSING"
        elif result.missing:
            code = "SEED_MISSING"
        elif result.differing:
            code = "SEED_DIFFERS"
        else:
            continue
        findings.append(Finding(code, "error", f"seed {result.seed.path.name}",
                                result.summary() + ".", f"invoke db.seed --env {env_name}"))
    return findings


def check_findings(conn: psycopg.Connection, checks: list[tree.Check]) -> list[Finding]:
    findings = []
    for check in checks:
        try:
            with conn.transaction():
                rows = conn.execute(check.sql).fetchmany(6)
        except psycopg.Error as exc:
            findings.append(Finding("CHECK_ERROR", "error", f"check {check.name}",
                                    f"{check.path} could not run: "
                                    f"{db.server_message(exc)}.",
                                    "fix the schema first (see the drift findings)"))
            continue
        if rows:
            sample = ", ".join(str(r[0]) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            findings.append(Finding("CHECK_FAILED", check.severity, f"check {check.name}",
                                    f"{check.description}: {sample}.", check.fix))
    return findings


# --- the shadow database ------------------------------------------------------------------

def shadow_snapshot(target: Target, applied: list[migrations.Migration],
                    progress: Progress | None = None) -> dict:
    """The catalog that `applied` produce on an empty database, cached by their checksums.

    Built in a scratch database on the target's own server (same version, same
    extensions available), or on an embedded server when the target refuses CREATE DATABASE.
    """
    progress = progress or Progress()
    if not applied:
        return {}  # diff() reads a missing section as empty
    conn = db.connect(target, purpose="shadow", autocommit=True)
    try:
        major = conn.info.server_version // 10000
    finally:
        conn.close()
    key = migrations.sha256(json.dumps(
        [CATALOG_FORMAT, major, [(m.version, m.checksum) for m in applied]]))
    cache = embedded.state_dir() / "cache" / f"shadow-{key[:32]}.json"
    if cache.exists():
        progress.info(f"shadow snapshot from cache ({cache.name})")
        return json.loads(cache.read_text())
    snapshot = _build_shadow(target, applied, progress)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(snapshot, sort_keys=True))
    tmp.replace(cache)
    return snapshot


def _build_shadow(target: Target, applied, progress: Progress) -> dict:
    try:
        return _shadow_on(target, target.dsn, applied)
    except psycopg.errors.InsufficientPrivilege:
        progress.info("target refuses CREATE DATABASE: building the shadow on an embedded server")
    with embedded.scratch_server() as admin_dsn:
        return _shadow_on(target, admin_dsn, applied)


def _shadow_on(target: Target, admin_dsn: str, applied) -> dict:
    name = f"shipshape_shadow_{uuid.uuid4().hex[:12]}"
    admin = db.connect(Target(target.env, admin_dsn, target.source), purpose="shadow",
                             autocommit=True)
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            shadow = Target(target.env, make_conninfo(admin_dsn, dbname=name), "shadow")
            with db.connect(shadow, purpose="shadow") as conn:
                history.ensure_history(conn)
                for migration in applied:
                    migrations.apply(conn, target.env, migration, applied_by="shadow")
                return db.read_only(conn, lambda: catalog.snapshot(conn))
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
    finally:
        admin.close()


# --- baseline -------------------------------------------------------------------------------

def baseline(conn: psycopg.Connection, target: Target, loaded: list[migrations.Migration],
             version: int, *, progress: Progress | None = None) -> list[migrations.Migration]:
    """Adopt a database whose objects were created by hand, as being at `version`.

    Only after proving that its schema equals what migrations 1..version produce;
    otherwise refuse (exit 3) and list the differences. Call with the migration lock held.
    """
    from shipshape.errors import ConfigError, Refused

    progress = progress or Progress()
    if version not in {m.version for m in loaded}:
        raise ConfigError(f"--version {version}: no migration has version {version:04d}.")
    recorded = history.read_history(conn)
    if recorded:
        raise Refused(
            f"This database already has a migration history (up to "
            f"{migrations.current_version(recorded) or 0:04d}); baseline only adopts databases "
            f"without one. Use `invoke db.status` and `invoke db.migrate` instead."
        )
    adopted = [m for m in loaded if m.version <= version]
    with progress.step(f"compare with migrations 0001..{version:04d} in a shadow database") as step:
        expected = shadow_snapshot(target, adopted, progress)
        actual = db.read_only(conn, lambda: catalog.snapshot(conn))
        differences = catalog.diff(expected, actual)
        step.note(f"{len(differences)} difference(s)")
    if differences:
        raise Refused(
            f"Refusing to baseline at {version:04d}: the schema is not what migrations "
            f"0001..{version:04d} produce ({len(differences)} difference(s)). Fix these first "
            f"(or pick the version the schema really matches):",
            details=[d.describe() for d in differences],
        )
    history.ensure_history(conn)
    with conn.transaction():
        for migration in adopted:
            history.record(conn, migration, applied_by=f"baseline by {db.operator()}")
    return adopted
