"""Verify: one operation that turns every disagreement between code and database into
findings. Never trusts that a step ran: it checks the history, compares the live catalog
with a shadow database built from the same rendered migrations, compares seed rows with
their declarations, and runs the data checks. It never writes to the target: the shadow
is built elsewhere (engine.shadow), and baseline, which writes history, is engine.baseline.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from shipshape import db
from shipshape.engine import boundary, catalog, history, migrations, seeds, tree
from shipshape.engine.findings import Finding
from shipshape.engine.shadow import shadow_snapshot
from shipshape.errors import ProblemsFound
from shipshape.progress import Progress
from shipshape.targets import Target


def verify(conn: psycopg.Connection, target: Target, sql_dir: Path, *,
           progress: Progress | None = None, code: tree.Tree | None = None,
           sweep: bool = True, ignored: list[dict] | None = None) -> list[Finding]:
    """Every finding for target's database, read-only. `code` is sql_dir already loaded
    for target's env (a deploy has it from its preflight). sweep: let the shadow remove
    scratch leftovers of killed builds first (doctor reports them instead). Differences on
    objects the env declares unmanaged (engine.boundary) are no findings: they are appended
    to `ignored`, for `--json`."""
    progress = progress or Progress()
    env = target.env
    code = code or tree.load(sql_dir, env)
    loaded = code.migrations
    findings: list[Finding] = []
    recorded = history.read_history(conn)
    with progress.step("history") as step:
        # Between the expand and the contract phase, the contract migrations are pending
        # by design: a warning that names the phase that applies them, not an error.
        _, deferred = migrations.plan_phase(migrations.plan(loaded, recorded),
                                            migrations.DeployPhase.EXPAND)
        findings += history_findings(migrations.status(loaded, recorded), env.name,
                                     deferred={m.version for m in deferred})
        findings += rendered_otherwise_findings(
            migrations.renders_differently(loaded, recorded), recorded, env.name)
        step.note(f"{len(recorded)} applied")
    with progress.step("schema against a shadow database") as step:
        applied = [m for m in loaded if m.version in recorded and recorded[m.version]["success"]]
        expected = shadow_snapshot(target, applied, progress, sweep=sweep, conn=conn)
        actual = db.read_only(conn, lambda: catalog.snapshot(conn))
        drift, declared = boundary.split(expected, actual, boundary.of(env, sql_dir))
        findings += drift_findings(drift, env.name)
        if ignored is not None:
            ignored += boundary.describe_ignored(declared)
        step.note(f"{len(drift)} difference(s)")  # declared ones: --json only
    with progress.step("seed rows") as step:
        results = db.read_only(conn, lambda: seeds.check(conn, code.seeds))
        findings += seed_findings(results, env.name)
        step.note(f"{sum(r.ok for r in results)} of {sum(r.total for r in results)} rows equal")
    with progress.step("data checks") as step:
        findings += db.read_only(conn, lambda: check_findings(conn, code.checks))
        step.note(f"{len(code.checks)} check(s)")
    return findings


def raise_if_problems(findings: list[Finding], next_command: str | None = None) -> None:
    """ProblemsFound for error findings. next_command: the one command that fixes them,
    decided above the engine (shipshape.ops.triage.route); else the first finding's fix."""
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        fix = f"Run `{next_command}`." if next_command else f"Fix: {errors[0].fix}"
        raise ProblemsFound(
            f"Verify found {len(errors)} problem(s); the database does not match the code. "
            f"First: {errors[0].object}: {errors[0].message} {fix}",
            findings=findings,
        )


# --- findings from each source ----------------------------------------------------------

def history_findings(entries: list[migrations.Entry], env_name: str, *,
                     deferred: set[int] = frozenset()) -> list[Finding]:
    state = migrations.State
    codes = {
        state.PENDING: ("MIGRATION_PENDING", "is in the code but not applied",
                        f"invoke deploy --env {env_name}"),
        state.FAILED: ("MIGRATION_FAILED", "failed part-way",
                       f"invoke db.migrate --env {env_name} --retry-failed"),
        state.CHECKSUM_MISMATCH: ("MIGRATION_CHECKSUM", "was changed after it was applied",
                                  (f"`invoke runbook.run edited-migration --env {env_name}`: "
                                   f"restore the applied file, or prove the edit changes "
                                   f"nothing and re-record it")),
        state.UNKNOWN: ("MIGRATION_UNKNOWN", "is applied but missing from this code",
                        "deploy the artifact that contains it (the database is ahead)"),
    }
    findings = []
    for entry in entries:
        if entry.state == state.PENDING and entry.version in deferred:
            findings.append(Finding(
                "CONTRACT_PENDING", "warning", f"migration {entry.name}",
                "Contract migration waits for the contract phase (it breaks the app "
                "releases built before it).",
                f"once every replica runs the new release: invoke deploy --env {env_name} "
                f"--phase contract"))
        elif entry.state in codes:
            code, what, fix = codes[entry.state]
            detail = f" ({entry.detail})" if entry.detail else ""
            findings.append(Finding(code, "error", f"migration {entry.name}",
                                    f"Migration {what}{detail}.", fix))
    return findings


def rendered_otherwise_findings(changed: list[migrations.Migration], recorded: dict[int, dict],
                                env_name: str) -> list[Finding]:
    """A settings change is not an edit of the migration (it counts as applied); the
    schema comparison says whether the database differs from what the settings expect."""
    return [Finding("MIGRATION_RENDERED_OTHERWISE", "warning", f"migration {m.name}",
                    f"Migration renders to {m.checksum[:12]} with env {env_name}'s settings "
                    f"now; it ran as {recorded[m.version]['checksum'][:12]}. Its template is "
                    f"unchanged, so it counts as applied.",
                    "if the schema findings show a difference, put the change in a new "
                    "migration; otherwise nothing") for m in changed]


def drift_findings(differences, env_name: str) -> list[Finding]:
    codes = {"missing": "DRIFT_MISSING", "unexpected": "DRIFT_UNEXPECTED", "changed": "DRIFT_CHANGED"}
    fixes = {
        "missing": (f"restore it as the applied migrations define it: "
                    f"`invoke runbook.run schema-drift --env {env_name}`"),
        "unexpected": (f"add a migration that creates it, or one that drops it; if another "
                       f"team or tool owns it, declare it in Pulumi.{env_name}.yaml "
                       f"(shipshape:unmanaged_extensions, unmanaged_schemas, "
                       f"unmanaged_relations or unmanaged_roles)"),
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
