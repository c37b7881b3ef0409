"""The curated mutants: one realistic bug each in the safety-critical code, with the tests
that must catch it.

`original` must occur exactly once in `file` (else the mutant is reported stale: the code
changed, update the mutant); `replacement` takes its place. `tests` are pytest node ids or
paths, run with -x: as few as catch the bug, so a run stays bounded. `issue` marks the
bugs that passed the whole suite before (issue 15). `harmless` explains a mutant that is
expected to survive (none is, today).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    id: str
    area: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    bug: str
    issue: bool = False
    harmless: str = ""


INTEG = "tests/integration/"
INC = "tests/incidents/"
APP = "tests/app/"

MUTANTS: list[Mutant] = [
    # --- engine/shadow: read-only, no leftovers, seeds checked first (issue 10) ---------
    Mutant(
        "shadow-commits", "shadow", "shipshape/engine/shadow.py",
        "    with conn.transaction(force_rollback=True):\n        # The env's timeouts",
        "    with conn.transaction():\n        # The env's timeouts",
        (INTEG + "test_shadow_isolation.py::"
                 "test_a_cold_verify_and_doctor_leave_a_login_the_dba_disabled_disabled",),
        "a cold verify commits the shadow's migrations: ALTER ROLE reaches the live cluster"),
    Mutant(
        "shadow-leftovers-kept", "shadow", "shipshape/engine/shadow.py",
        "    orphans = _orphaned_databases(target, conn)\n", "    orphans = []\n",
        (INTEG + "test_shadow_leftovers.py::test_doctor_reports_a_leftover_and_verify_removes_it",),
        "the scratch database of a killed verify is never removed"),
    Mutant(
        "doctor-sweeps-leftovers", "shadow", "shipshape/ops/doctor.py",
        "                                                code=code, sweep=False,\n",
        "                                                code=code, sweep=True,\n",
        (INTEG + "test_shadow_leftovers.py::test_doctor_reports_a_leftover_and_verify_removes_it",),
        "doctor removes the leftovers it should only report (doctor is read-only)"),
    Mutant(
        "shadow-reused-pid-alive", "shadow", "shipshape/adapters/owners.py",
        "            return (_start_of(process) == self.start\n",
        "            return (True\n",
        (INTEG + "test_shadow_leftovers.py::"
                 "test_a_scratch_object_of_a_live_owner_or_another_host_is_never_removed",),
        "a leftover whose pid another process now has is kept forever"),
    Mutant(
        "shadow-sigterm-ignored", "shadow", "shipshape/adapters/owners.py",
        "    signal.signal(signal.SIGTERM, terminated)\n", "    pass\n",
        (INTEG + "test_shadow_leftovers.py::test_sigterm_removes_the_scratch_database_on_its_way_out",),
        "SIGTERM during the shadow build leaves its scratch database"),
    Mutant(
        "seed-rehearsal-skipped", "shadow", "shipshape/ops/pipeline.py",
        "        shadow.check_seeds(target, seeded_schema(code.migrations, pending), code.seeds,\n"
        "                           progress, sweep=False, conn=conn)  # swept by the caller\n",
        "        pass\n",
        (INTEG + "test_seed_preflight.py::test_a_real_deploy_exits_5_having_migrated_nothing",),
        "a deploy migrates, then fails to seed a value the schema refuses (incident 1)"),
    # --- engine/migrations and engine/history: exactly once, all or nothing ------------
    Mutant(
        "history-own-transaction", "migrations", "shipshape/engine/migrations.py",
        "        _in_one_transaction(conn, head, migration.sql, closing,\n"
        "                            before_commit=before_commit and (lambda: before_commit(conn, migration)))\n",
        "        _in_one_transaction(conn, head, migration.sql, \"SELECT 1;\",\n"
        "                            before_commit=before_commit and (lambda: before_commit(conn, migration)))\n"
        "        with conn.transaction():\n"
        "            conn.execute(closing)\n",
        (INTEG + "test_history_atomicity.py",),
        "a migration's history row is committed in its own transaction, apart from its SQL",
        issue=True),
    Mutant(
        "rollback-delete-own-transaction", "migrations", "shipshape/engine/migrations.py",
        "            _in_one_transaction(conn, head, migration.rollback_sql,\n"
        "                                _closing(f\"{history.delete_script(migration)};\", watched))\n",
        "            _in_one_transaction(conn, head, migration.rollback_sql,\n"
        "                                _closing(\"SELECT 1;\", watched))\n"
        "            with conn.transaction():\n"
        "                history.delete(conn, migration.version)\n",
        (INTEG + "test_history_atomicity.py",),
        "a rollback deletes its history row in a transaction of its own"),
    Mutant(
        "checksum-mismatch-not-refused", "migrations", "shipshape/engine/migrations.py",
        "    if mismatched:\n", "    if False:\n",
        (INTEG + "test_migrations.py::test_edited_applied_migration_is_refused_with_both_checksums",),
        "an applied migration whose file changed is applied over"),
    Mutant(
        "ahead-of-code-not-refused", "migrations", "shipshape/engine/migrations.py",
        "    if unknown:\n", "    if False:\n",
        (INTEG + "test_migrations.py::test_database_ahead_of_code_is_refused",),
        "a database ahead of the code is deployed to"),
    Mutant(
        "failed-row-not-retried", "migrations", "shipshape/engine/migrations.py",
        '    todo = [m for m in migrations if m.version not in history or not history[m.version]["success"]]',
        "    todo = [m for m in migrations if m.version not in history]",
        (INTEG + "test_migrations.py::test_non_transactional_failure_is_recorded_and_blocks_until_retried",),
        "--retry-failed finds nothing to retry"),
    Mutant(
        "partial-failure-recorded-as-success", "migrations", "shipshape/engine/migrations.py",
        "                history.record(conn, migration, applied_by=applied_by, duration_ms=duration,\n"
        "                               success=False)\n",
        "                history.record(conn, migration, applied_by=applied_by, duration_ms=duration,\n"
        "                               success=True)\n",
        (INTEG + "test_migrations.py::test_non_transactional_failure_is_recorded_and_blocks_until_retried",),
        "a half-applied non-transactional migration is recorded as applied"),
    Mutant(
        "destructive-allowed-everywhere", "migrations", "shipshape/engine/migrations.py",
        "    if flagged and not env.allow_destructive:\n", "    if False:\n",
        (INTEG + "test_migrations.py::test_rollback_to_version_and_destructive_refusal",),
        "declared destructive SQL runs where allow_destructive is false"),
    Mutant(
        "undeclared-destructive-runs", "migrations", "shipshape/engine/migrations.py",
        "        if found and not declared:\n", "        if False:\n",
        (INTEG + "test_migrations.py::test_undeclared_destructive_statement_is_refused_when_it_is_about_to_run",),
        "undeclared destructive SQL is accepted"),
    Mutant(
        "runtime-guard-blind", "migrations", "shipshape/queries/guard/install.sql",
        "    IF lost IS NULL THEN\n", "    IF true THEN\n",
        (INTEG + "test_destructive_guard.py::test_the_runtime_guard_refuses_each_form_without_the_parser",),
        "what a migration lost without declaring it is committed"),
    Mutant(
        "half-built-index-kept", "migrations", "shipshape/engine/migrations.py",
        '            rebuilt = _drop_half_built(conn, env, migration, progress) if half_built else ""\n',
        '            rebuilt = ""\n',
        (INTEG + "test_half_built_index.py",),
        "an INVALID index left by a killed build is kept, and the migration recorded as a success"),
    Mutant(
        "history-retry-keeps-failed-flag", "history", "shipshape/queries/history_insert.sql",
        "    success = EXCLUDED.success", "    success = history.success",
        (INTEG + "test_migrations.py::test_non_transactional_failure_is_recorded_and_blocks_until_retried",),
        "a successful retry leaves the history row marked failed"),
    Mutant(
        "failed-row-read-as-applied", "history", "shipshape/engine/migrations.py",
        '        elif not row["success"]:\n', "        elif False:\n",
        (INTEG + "test_migrations.py::test_non_transactional_failure_is_recorded_and_blocks_until_retried",),
        "a history row marked failed reads as applied: the half-run migration is never retried"),
    Mutant(
        "deploy-passes-with-drift", "verify", "shipshape/ops/pipeline.py",
        "        verify.raise_if_problems(findings, route.command if route else None)\n",
        "        pass\n",
        ("tests/infra/test_gate.py::test_a_failing_verify_fails_the_gate_and_the_app_role_cannot_log_in",),
        "the deploy's verify gate finds problems and passes"),

    # --- engine/guard: the runtime guard rolls back what the parser could not see ----------
    Mutant(
        "guard-drop-unseen", "guard", "shipshape/queries/guard/install.sql",
        "        WHERE c.oid IS NULL\n           OR (c.relkind IN ('r', 'p', 'f', 'v', 'm')\n",
        "        WHERE (c.relkind IN ('r', 'p', 'f', 'v', 'm')\n",
        (INTEG + "test_destructive_guard.py::test_the_runtime_guard_refuses_each_form_without_the_parser",),
        "a relation an undeclared migration dropped is not a loss: the drop is committed"),
    Mutant(
        "guard-deleted-rows-unseen", "guard", "shipshape/queries/guard/install.sql",
        "       OR t.deleted > b.deleted\n", "",
        (INTEG + "test_destructive_guard.py::test_the_runtime_guard_refuses_each_form_without_the_parser",),
        "rows an undeclared migration deleted (DELETE, MERGE ... DELETE, a trigger) are committed"),
    Mutant(
        "guard-emptied-table-unseen", "guard", "shipshape/queries/guard/install.sql",
        "       OR (t.filenode <> b.filenode AND NOT t.has_rows AND b.has_rows);\n",
        "       OR false;\n",
        (INTEG + "test_destructive_guard.py::test_the_runtime_guard_refuses_each_form_without_the_parser",),
        "a table an undeclared migration truncated or rewrote empty is committed"),
    Mutant(
        "guard-column-type-unseen", "guard", "shipshape/queries/guard/install.sql",
        "       OR NOT b.types <@ t.types\n",
        "       OR cardinality(t.types) < cardinality(b.types)\n",
        (INTEG + "test_destructive_guard.py::test_the_runtime_guard_refuses_each_form_without_the_parser",),
        "a column an undeclared migration narrowed (ALTER ... TYPE USING) is committed"),
    Mutant(
        "guard-checks-after-commit", "guard", "shipshape/engine/migrations.py",
        '    return f"{history_statement}\\n{guard.CHECK}" if watched else history_statement\n',
        '    return f"{history_statement}\\nCOMMIT;\\n{guard.CHECK}" if watched else history_statement\n',
        (INTEG + "test_destructive_guard.py::test_the_runtime_guard_refuses_each_form_without_the_parser",),
        "the guard's check runs after COMMIT: it refuses, but the loss is not rolled back"),
    Mutant(
        "guard-lock-modes-narrow", "guard", "shipshape/queries/guard/install.sql",
        "                AND mode IN ('RowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')) l\n",
        "                AND mode IN ('AccessExclusiveLock')) l\n",
        (INTEG + "test_destructive_guard.py::test_the_runtime_guard_refuses_each_form_without_the_parser",),
        "the guard looks only at relations created, dropped or altered: rows deleted through "
        "a DELETE, a MERGE or a function are committed"),
    Mutant(
        "guard-snapshot-not-kept", "guard", "shipshape/queries/guard/install.sql",
        "        FROM touched\n        WHERE present\n",
        "        FROM touched\n        WHERE false\n",
        (INTEG + "test_destructive_guard.py::test_one_run_keeps_the_snapshot_true_from_migration_to_migration",),
        "the snapshot is not updated after a migration: a table created and filled earlier in "
        "the run is not protected later in it"),
    # --- migrations.check_declared via engine/sqlparse: what cannot be read is destructive -
    Mutant(
        "parser-dynamic-execute-safe", "parser", "shipshape/engine/sqlparse.py",
        '        unknown = (Effect("unknown dynamic SQL", ""),)\n',
        "        unknown = ()\n",
        ("tests/unit/test_sqlparse.py::test_execute_of_anything_else_is_unknown_and_destructive",
         INTEG + "test_destructive_guard.py::test_the_parser_refuses_each_undeclared_form_through_deploy"),
        "EXECUTE of dynamic SQL (format(), a variable) is treated as safe by the parser's gate"),
    Mutant(
        "parser-unknown-language-safe", "parser", "shipshape/engine/sqlparse.py",
        '        return _Body(unknown=(Effect("unknown code", language),))\n',
        "        return _Body()\n",
        ("tests/unit/test_sqlparse.py::test_do_block_in_another_language_is_unknown",
         "tests/unit/test_sqlparse.py::test_function_in_an_unreadable_language_is_unknown"),
        "a DO block or function in a language the grammar cannot read is treated as safe"),
    Mutant(
        "parser-gate-rollback-uses-up-flag", "parser", "shipshape/engine/migrations.py",
        "        declared = migration.rollback_destructive if rollback else migration.destructive\n",
        "        declared = migration.destructive\n",
        (INTEG + "test_migrations.py::test_a_rollback_is_judged_by_its_own_declaration",),
        "an undeclared destructive rollback runs because its migration declared itself"),
    # --- engine/identity: the database knows its env ------------------------------------
    Mutant(
        "identity-stamp-ignored", "identity", "shipshape/engine/identity.py",
        "    if found is not None and found.name != env.name:\n", "    if False:\n",
        (INTEG + "test_identity.py::test_default_env_on_a_staging_database_is_refused",),
        "DATABASE_URL of a staging database with the default --env local proceeds"),
    Mutant(
        "identity-last-deploy-ignored", "identity", "shipshape/engine/identity.py",
        '    if row is None and db.table_exists(conn, "shipshape.deployments"):\n',
        "    if False:\n",
        (INTEG + "test_identity.py::test_a_database_deployed_before_stamps_is_known_by_its_last_deploy",),
        "a database deployed before stamps existed has no identity: any --env proceeds"),
    # --- engine/indexes: no INVALID index is ever recorded as built ----------------------
    Mutant(
        "invalid-index-recorded-as-success", "indexes", "shipshape/engine/migrations.py",
        "    bad = indexes.invalid(conn, indexes.created(migration.sql))\n    if bad:\n",
        "    bad = indexes.invalid(conn, indexes.created(migration.sql))\n    if False:\n",
        (INTEG + "test_half_built_index.py::test_apply_alone_never_records_a_success_while_its_index_is_invalid",),
        "a migration whose CREATE INDEX CONCURRENTLY IF NOT EXISTS skipped an INVALID index "
        "is recorded as a success"),
    Mutant(
        "invalid-index-query-blind", "indexes", "shipshape/queries/indexes_invalid.sql",
        "WHERE NOT i.indisvalid\n", "WHERE false\n",
        (INTEG + "test_half_built_index.py",),
        "the check for INVALID indexes finds none: a half-built index is neither rebuilt "
        "nor refused"),
    # --- engine/boundary: what the env declares unmanaged is left alone --------------------
    Mutant(
        "boundary-revokes-unknown-role", "boundary", "shipshape/ops/runbooks/steps/rebuild.py",
        "        if grantee not in mentioned:\n", "        if False:\n",
        (INTEG + "test_boundary.py::test_undeclared_they_are_findings_and_no_runbook_revokes_the_role",),
        "restore emits REVOKE for a role no migration grants anything to (a DBA's role)"),
    Mutant(
        "boundary-ignored-role-reported", "boundary", "shipshape/engine/boundary.py",
        "                             if not any(fnmatchcase(role, glob) for glob in self.roles)}\n",
        "                             if True}\n",
        (INTEG + "test_boundary.py::test_declared_deploy_and_doctor_are_clean_and_json_lists_them",),
        "a grant to a declared unmanaged role is reported as drift (and fails the deploy)"),
    Mutant(
        "boundary-ignored-relation-reported", "boundary", "shipshape/engine/boundary.py",
        "                or any(fnmatchcase(relation, glob) for glob in self.relations)\n",
        "                or False\n",
        (INTEG + "test_boundary.py::test_declared_deploy_and_doctor_are_clean_and_json_lists_them",),
        "a relation declared unmanaged is reported as drift (and fails the deploy)"),
    # --- engine/releases: contract waits for the old release -----------------------------
    Mutant(
        "contract-despite-old-release", "releases", "shipshape/engine/releases.py",
        "    if not old:\n", "    if True:\n",
        (INTEG + "test_phases.py::test_contract_is_refused_while_an_older_release_is_alive",),
        "a contract migration runs while a replica of an older release still heartbeats"),
    Mutant(
        "heartbeat-ttl-inverted", "releases", "shipshape/queries/app_instances_alive.sql",
        "WHERE last_seen > now() - make_interval(secs => %(ttl_seconds)s)",
        "WHERE last_seen < now() - make_interval(secs => %(ttl_seconds)s)",
        (INTEG + "test_phases.py::test_contract_is_refused_while_an_older_release_is_alive",),
        "the live replicas are read as dead (and the dead as live)"),
    # --- engine/locksafety: zero-downtime refusal ---------------------------------------
    Mutant(
        "lock-finding-not-refused", "locksafety", "shipshape/engine/locksafety.py",
        "    refused = [f for f in found if f.refused]\n    if refused:\n",
        "    refused = [f for f in found if f.refused]\n    if False:\n",
        (INTEG + "test_lock_check.py::test_each_rule_refuses_in_prod_with_the_size_and_the_safe_rewrite",),
        "a lock above prod's thresholds (a table rewrite under ACCESS EXCLUSIVE) is applied"),
    Mutant(
        "lock-ok-without-reason", "locksafety", "shipshape/engine/locksafety.py",
        "        if not reason.strip():\n", "        if False:\n",
        (INTEG + "test_lock_check.py::test_a_bad_lock_ok_is_bad_input",),
        "`-- shipshape:lock-ok <rule>` without a reason is accepted (the history records none)"),
    Mutant(
        "lock-ok-any-rule", "locksafety", "shipshape/engine/locksafety.py",
        "        accepted = dict(migration.lock_ok)\n",
        "        accepted = {rule: reason for _, reason in migration.lock_ok for rule in SAFE_REWRITES}\n",
        (INTEG + "test_lock_check.py::test_lock_ok_accepts_only_the_rule_it_names",),
        "a lock-ok for one rule accepts every other rule of the migration"),
    # --- engine/backfill: a batch per transaction, resumable ------------------------------
    Mutant(
        "backfill-batches-together", "backfill", "shipshape/engine/backfill.py",
        "                touched = conn.execute(migration.sql).rowcount\n",
        "                touched = conn.execute(migration.sql).rowcount\n"
        "                touched += max(conn.execute(migration.sql).rowcount, 0)\n",
        (INTEG + "test_backfill.py::test_a_backfill_runs_in_batches_each_its_own_transaction",),
        "a batch is committed together with the next (locks held twice as long)"),
    Mutant(
        "backfill-one-transaction", "backfill", "shipshape/engine/migrations.py",
        "    backfill.run(conn, env, migration, step=step)\n",
        "    with conn.transaction():\n        backfill.run(conn, env, migration, step=step)\n",
        (INTEG + "test_backfill.py::test_a_killed_backfill_resumes_where_it_stopped",),
        "the batches commit together at the end: a killed backfill keeps no progress"),

    # --- db/locks and db/timeouts: one deploy at a time, bounded waits --------------------
    Mutant(
        "deploy-without-lock", "locks", "shipshape/ops/pipeline.py",
        "                held.enter_context(db.advisory_lock(conn, env.migration_lock_wait))\n",
        "                pass  # the deploy takes no lock\n",
        (INTEG + "test_deploy_lock_barrier.py",),
        "the deploy does not take the advisory lock", issue=True),
    Mutant(
        "lock-result-ignored", "locks", "shipshape/db/locks.py",
        "        while not conn.execute(\"SELECT pg_try_advisory_lock(%s, %s)\",\n"
        "                               [classid, objid]).fetchone()[0]:\n",
        "        while not (conn.execute(\"SELECT pg_try_advisory_lock(%s, %s)\",\n"
        "                                [classid, objid]).fetchone() or True):\n",
        (INTEG + "test_deploy_lock_barrier.py",),
        "pg_try_advisory_lock's answer is ignored"),
    Mutant(
        "lock-key-changed", "locks", "shipshape/db/locks.py",
        '    objid = int.from_bytes(digest[4:8], "big") & 0x7FFFFFFF',
        '    objid = int.from_bytes(digest[8:12], "big") & 0x7FFFFFFF',
        (INTEG + "test_deploy_lock_barrier.py",),
        "the lock key is not the documented one (older deploys would not queue)"),
    Mutant(
        "lock-never-released", "locks", "shipshape/db/locks.py",
        '            conn.execute("SELECT pg_advisory_unlock(%s, %s)", [classid, objid])\n',
        "            pass\n",
        (INTEG + "test_lock_semantics.py::test_the_lock_is_released_when_its_block_ends",),
        "the lock is held until the connection closes"),
    Mutant(
        "retry-gives-up-after-first", "timeouts", "shipshape/db/timeouts.py",
        "            if attempt == env.lock_retries:\n", "            if True:\n",
        (INTEG + "test_lock_retry_window.py",),
        "the lock-timeout retry gives up after the first timeout (message unchanged)",
        issue=True),
    Mutant(
        "retry-backoff-constant", "timeouts", "shipshape/db/timeouts.py",
        "            time.sleep(backoff * (2 ** attempt))", "            time.sleep(backoff)",
        (INTEG + "test_lock_semantics.py::test_retries_back_off_doubling",),
        "the backoff does not double"),
    Mutant(
        "timeouts-leak-to-session", "timeouts", "shipshape/db/timeouts.py",
        '"SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {};"',
        '"SET lock_timeout = {}; SET LOCAL statement_timeout = {};"',
        (INTEG + "test_lock_semantics.py::test_a_migration_s_timeouts_do_not_outlive_it",),
        "a migration's lock_timeout stays set on the session after it"),

    # --- engine/catalog and engine/verify: drift is seen --------------------------------
    Mutant(
        "index-valid-hardcoded", "catalog", "shipshape/engine/catalog.py",
        '"valid": r["valid"],', '"valid": True,',
        (INTEG + "test_index_drift.py",),
        "the snapshot says every index is valid", issue=True),
    Mutant(
        "index-changes-ignored", "catalog", "shipshape/engine/catalog.py",
        "            elif want[name] != have[name]:\n",
        '            elif want[name] != have[name] and kind != "index":\n',
        (INTEG + "test_index_drift.py",),
        "the diff ignores every index change", issue=True),
    Mutant(
        "index-validity-not-read", "catalog", "shipshape/queries/catalog/indexes.sql",
        "       i.indisvalid AS valid", "       true AS valid",
        (INTEG + "test_index_drift.py",),
        "the catalog query reads every index as valid"),
    Mutant(
        "missing-objects-ignored", "catalog", "shipshape/engine/catalog.py",
        "                if _parent(kind, name, want[name]) not in missing:\n",
        "                if False:\n",
        (INTEG + "test_catalog.py::test_each_drift_is_exactly_one_difference",),
        "the diff reports nothing missing"),
    Mutant(
        "children-of-present-tables-folded", "catalog", "shipshape/engine/catalog.py",
        "        absent |= mine.keys() - theirs.keys()\n", "        absent |= mine.keys()\n",
        (INTEG + "test_catalog.py::test_each_drift_is_exactly_one_difference",),
        "a missing column of a table that exists is folded away"),
    Mutant(
        "verify-drops-drift", "verify", "shipshape/engine/verify.py",
        "        findings += drift_findings(drift, env.name)\n", "        findings += []\n",
        (INTEG + "test_index_drift.py",),
        "verify computes the drift and reports none of it"),
    Mutant(
        "verify-seed-differences-dropped", "verify", "shipshape/engine/verify.py",
        "        elif result.differing:\n", "        elif False:\n",
        (INTEG + "test_verify.py::test_clean_after_deploy_then_each_source_reports",
         INC + "test_runbook_engine.py::test_doctor_and_runbook_from_the_command_line"),
        "a seed row whose values differ is not a finding"),
    Mutant(
        "verify-not-read-only", "verify", "shipshape/db/transactions.py",
        '        conn.execute("SET TRANSACTION READ ONLY")\n', "        pass\n",
        (INTEG + "test_verify_read_only.py",),
        "verify's transaction is not read-only (a check could write)"),

    # --- secrets: no password in any output ---------------------------------------------
    Mutant(
        "passwd-key-not-redacted", "secrets", "shipshape/secrets.py",
        "password|passwd|passwort", "password|passwort",
        ("tests/unit/test_secrets_registered.py::test_key_value_passwords_are_hidden_without_being_registered",),
        "a misspelt passwd= is printed"),
    Mutant(
        "unparseable-dsn-shown", "secrets", "shipshape/secrets.py",
        "        register_secret(dsn)\n", "        pass\n",
        ("tests/unit/test_secrets_registered.py::test_a_dsn_libpq_cannot_parse_is_hidden_whole",),
        "a DSN libpq cannot parse is shown"),
    Mutant(
        "known-secrets-not-replaced", "secrets", "shipshape/secrets.py",
        '        text = text.replace(secret, "***")\n', "        text = text\n",
        ("tests/unit/test_secrets_registered.py::test_a_registered_secret_is_hidden_wherever_it_appears",),
        "registered secrets (the app password, a DSN's pieces) are printed"),
    Mutant(
        "password-stops-at-first-at", "secrets", "shipshape/secrets.py",
        r"(?P<pw>[^\s/]*)@", r"(?P<pw>[^\s/@]*)@",
        ("tests/unit/test_secrets.py",),
        "a password with an unencoded '@' is shown after the '@'"),
    Mutant(
        "ambiguous-password-accepted", "secrets", "shipshape/secrets.py",
        '    return bool(match and "@" in match.group("pw"))', "    return False",
        ("tests/unit/test_secrets.py::test_unencoded_at_is_refused_with_the_fix",),
        "a password with an unencoded '@' is sent to libpq"),

    # --- engine/seeds: idempotent upserts, never deletes ----------------------------------
    Mutant(
        "seed-rewrites-unchanged-rows", "seeds", "shipshape/queries/seed_upsert.sql",
        "WHERE ROW({current}) IS DISTINCT FROM ROW({incoming})\n", "\n",
        (INTEG + "test_seeds.py::test_apply_twice_changes_nothing_the_second_time",),
        "an unchanged seed row is rewritten (and counted as updated)"),
    Mutant(
        "seed-does-not-update", "seeds", "shipshape/queries/seed_upsert.sql",
        "ON CONFLICT ({key}) DO UPDATE\nSET {assignments}\nWHERE ROW({current}) IS DISTINCT FROM ROW({incoming})\n",
        "ON CONFLICT ({key}) DO NOTHING\n",
        (INTEG + "test_seeds.py::test_changed_value_is_updated_back",),
        "a changed seed value is not put back"),
    Mutant(
        "seed-not-one-transaction", "seeds", "shipshape/engine/seeds/applying.py",
        "        with conn.transaction():\n"
        "            db.set_local_timeouts(conn, env)\n"
        "            return [_apply_seed(conn, env, seed) for seed in seeds]\n",
        "        results = []\n"
        "        for seed in seeds:\n"
        "            with conn.transaction():\n"
        "                db.set_local_timeouts(conn, env)\n"
        "                results.append(_apply_seed(conn, env, seed))\n"
        "        return results\n",
        (INTEG + "test_seeds.py::test_sql_error_names_file_row_and_message_and_writes_nothing",),
        "each seed file commits on its own: a failing file leaves the files before it applied"),
    Mutant(
        "seed-envs-ignored", "seeds", "shipshape/engine/seeds/declarations.py",
        "        return self.seed.set in env.seed_sets and (self.envs is None or env.profile in self.envs)",
        "        return self.seed.set in env.seed_sets",
        ("tests/unit/test_seeds_load.py::test_set_and_envs_decide_which_files_apply",),
        "a seed file for local and dev is applied in other envs"),
    Mutant(
        "seed-initial-overwritten", "seeds", "shipshape/engine/seeds/model.py",
        "        return [c for c in columns if c not in self.key and c not in self.initial]\n",
        "        return [c for c in columns if c not in self.key]\n",
        (INTEG + "test_seeds.py::test_a_users_change_to_initial_data_survives_apply_and_is_not_a_finding",),
        "a redeploy puts an initial column (a user's credit balance) back to its seed value"),
    Mutant(
        "seed-float-rounded", "seeds", "shipshape/engine/seeds/statements.py",
        "    return repr(value) if isinstance(value, float) else value\n",
        "    return value\n",
        (INTEG + "test_seed_preflight.py::"
                 "test_a_fraction_for_an_integer_column_is_refused_not_rounded",),
        "a fraction for an integer column is rounded by PostgreSQL (3.5 goes in as 4)"),
    Mutant(
        "seed-rehearsal-after-contract", "seeds", "shipshape/ops/pipeline.py",
        "    return [m for m in loaded if m not in deferred]\n",
        "    return list(loaded)\n",
        (INTEG + "test_phases.py::test_seeds_are_rehearsed_on_the_schema_the_seed_gate_meets",),
        "seeds are rehearsed after the contract migrations the seed gate runs before: the "
        "deploy migrates, then fails to seed"),

    # --- ops/runbooks: steps and confirmation -------------------------------------------
    Mutant(
        "dev-confirms-on-a-terminal", "runbooks", "shipshape/ops/runbooks/confirmation.py",
        "    if not env.is_local:\n", '    if env.name == "prod":\n',
        (INC + "test_confirmation_terminal.py",),
        "runbook.run in dev or staging proceeds after an interactive 'y' without --yes",
        issue=True),
    Mutant(
        "prod-without-reason", "runbooks", "shipshape/ops/runbooks/confirmation.py",
        "    if env.is_prod and not result.reason:\n", "    if False:\n",
        (INC + "test_runbook_engine.py::test_prod_needs_yes_and_a_reason_and_dry_run_changes_nothing",),
        "prod runs without a recorded reason"),
    Mutant(
        "terminate-without-yes", "runbooks", "shipshape/ops/runbooks/confirmation.py",
        "    if needs_yes and not yes:\n", "    if False:\n",
        (INC + "test_incident_7_lock.py",),
        "sessions are ended on a local terminal's 'y', without --yes"),
    Mutant(
        "destructive-step-anywhere", "runbooks", "shipshape/ops/runbooks/confirmation.py",
        "    if destructive and not env.allow_destructive:\n", "    if False:\n",
        (INC + "test_runbook_guards.py::test_a_deleting_step_is_refused_where_destructive_statements_are_forbidden",),
        "a step that deletes data runs where the env forbids destructive statements"),
    Mutant(
        "restore-drops-hand-added-column", "runbooks", "shipshape/ops/runbooks/steps/rebuild.py",
        '    ("column", "missing"): _missing_column,\n',
        '    ("column", "missing"): _missing_column,\n'
        '    ("column", "unexpected"): lambda ctx, d, expected: ([Statement(\n'
        '        2, f\'ALTER TABLE "{d.actual["table"]}" DROP COLUMN '
        '"{d.name[len(d.actual["table"]) + 1:]}"\', True)], ""),\n',
        (INC + "test_hand_added_column.py",),
        "restore emits DROP COLUMN for a hand-added column while fixing a missing index",
        issue=True),
    Mutant(
        "restore-invents-values", "runbooks", "shipshape/ops/runbooks/steps/rebuild.py",
        '        if column.get("default") is None and not column.get("generated") and _has_rows(ctx, table):\n',
        "        if False:\n",
        (INC + "test_incident_3_drift.py::test_a_dropped_not_null_column_of_a_table_with_rows_is_escalated",),
        "restore adds a NOT NULL column without a default to a table with rows"),
    Mutant(
        "restore-renumbers-identity", "runbooks", "shipshape/ops/runbooks/steps/rebuild.py",
        '    if column.get("identity"):\n', "    if False:\n",
        (INC + "test_restore_numbered_columns.py",),
        "restore adds an identity column back, numbering every row anew"),
    Mutant(
        "restore-renumbers-serial", "runbooks", "shipshape/ops/runbooks/steps/rebuild.py",
        "    if owned:\n", "    if False:\n",
        (INC + "test_restore_numbered_columns.py",),
        "restore adds a serial column back without the sequence it owned"),
    Mutant(
        "plan-not-checked-before-run", "runbooks", "shipshape/ops/runbooks/running.py",
        "    if planned.skip or fresh.sha256 != planned.sha256:\n", "    if planned.skip:\n",
        (INC + "test_runbook_guards.py::test_a_step_whose_sql_changed_since_the_plan_is_not_run",),
        "a step runs SQL other than the plan that was confirmed"),
    Mutant(
        "done-step-planned-again", "runbooks", "shipshape/ops/runbooks/running.py",
        "        if step.id in done:\n", "        if False:\n",
        (INC + "test_runbook_guards.py::test_a_resumed_run_does_not_apply_a_done_step_again",),
        "a resumed run plans and applies its done steps again"),
    Mutant(
        "fix-row-count-unchecked", "runbooks", "shipshape/ops/runbooks/steps/fix.py",
        "            if cur.rowcount != fix.count:\n", "            if False:\n",
        (INC + "test_incident_6_integrity.py::test_a_delete_needs_exactly_the_rows_that_were_shown",),
        "a fix changes other rows than the ones its plan showed"),
    Mutant(
        "terminate-ends-shipshape-runs", "runbooks", "shipshape/ops/runbooks/steps/terminate.py",
        "    sessions = [s for s in sessions if not s.is_shipshape]\n",
        "    sessions = list(sessions)\n",
        (INC + "test_runbook_guards.py::test_terminate_never_ends_a_shipshape_run",),
        "blocking-session ends a deploy that holds the lock"),
    Mutant(
        "terminate-ignores-start-time", "runbooks", "shipshape/queries/runbook/terminate.sql",
        "WHERE pid = %(pid)s AND backend_start = %(backend_start)s",
        "WHERE pid = %(pid)s AND %(backend_start)s::timestamptz IS NOT NULL",
        (INC + "test_runbook_guards.py::test_terminate_ends_a_pid_only_with_its_start_time",),
        "a session that got a planned pid since the plan is ended"),

    # --- pulumi_gate: the gate re-runs when what it applies changes ------------------------
    Mutant(
        "gate-seed-keys-only", "pulumi_gate", "shipshape/engine/tree.py",
        '"rows": list(s.rows)}', '"rows": [s.key_of(r) for r in s.rows]}',
        ("tests/infra/test_gate_inputs.py",),
        "the gate's checksums ignore seed values (a changed `enabled` does not re-run it)",
        issue=True),
    Mutant(
        "gate-checks-not-inputs", "pulumi_gate", "shipshape/engine/tree.py",
        '"checks": {c.name: migrations.sha256(c.sql) for c in code.checks}',
        '"checks": {c.name: "" for c in code.checks}',
        ("tests/infra/test_gate_inputs.py",),
        "a changed data check does not re-run the gate"),
    Mutant(
        "gate-source-checksum", "pulumi_gate", "shipshape/engine/tree.py",
        '"migrations": {m.name: m.checksum for m in code.migrations}',
        '"migrations": {m.name: m.source_checksum for m in code.migrations}',
        ("tests/infra/test_gate.py::test_checksums_do_not_depend_on_where_the_tree_is",),
        "the gate watches the templates, not what they render to for the env"),
    Mutant(
        "gate-ignores-recreated-database", "pulumi_gate", "shipshape/pulumi_gate/gate.py",
        'WATCHED = ("env", "checksums", "database_id", "app_role")',
        'WATCHED = ("env", "checksums", "app_role")',
        ("tests/infra/test_gate.py",),
        "a recreated, empty database does not re-run the gate"),

    # --- app: the charge and every user's own rows ---------------------------------------
    Mutant(
        "charge-without-balance-guard", "app", "app/store.py",
        'WHERE id = %(id)s AND ("unlimitedUntil" > now() OR "creditBalance" >= %(cost)s)',
        "WHERE id = %(id)s",
        (APP + "test_charge_statement.py",),
        "the charge's UPDATE does not check the balance (only the CHECK constraint stops it)"),
    Mutant(
        "charge-read-then-write", "app", "app/store.py",
        '    return await one(conn, CHARGE_SQL, {"id": user_id, "cost": cost})\n',
        "    row = await one(conn, 'SELECT \"creditBalance\" >= %s OR coalesce(\"unlimitedUntil\" "
        "> now(), false) AS ok FROM users WHERE id = %s', [cost, user_id])\n"
        "    if not row[\"ok\"]:\n"
        "        return None\n"
        "    return await one(conn, 'UPDATE users SET \"creditBalance\" = \"creditBalance\" - "
        "CASE WHEN \"unlimitedUntil\" > now() THEN 0 ELSE %(cost)s END WHERE id = %(id)s "
        "RETURNING \"creditBalance\", CASE WHEN \"unlimitedUntil\" > now() THEN 0 ELSE "
        "%(cost)s END AS charged', {\"id\": user_id, \"cost\": cost})\n",
        (APP + "test_charge_statement.py",),
        "the charge reads the balance, then writes it: not atomic", issue=True),
    Mutant(
        "charge-unlimited-charged", "app", "app/store.py",
        'SET "creditBalance" = "creditBalance" - CASE WHEN "unlimitedUntil" > now() THEN 0 ELSE %(cost)s END,',
        'SET "creditBalance" = "creditBalance" - %(cost)s,',
        (APP + "test_generate.py::test_unlimited_accounts_are_not_charged",),
        "an unlimited account is charged"),
    Mutant(
        "project-read-not-scoped", "app", "app/store.py",
        'WHERE p.id = %s AND p."userId" = %s\n', "WHERE p.id = %s AND %s IS NOT NULL\n",
        (APP + "test_projects.py::test_a_user_cannot_see_or_touch_another_users_project",),
        "a user reads another user's project"),
    Mutant(
        "project-list-not-scoped", "app", "app/store.py",
        '      WHERE p."userId" = %s\n', "      WHERE %s IS NOT NULL\n",
        (APP + "test_projects.py::test_a_user_cannot_see_or_touch_another_users_project",),
        "a user lists every user's projects"),
    Mutant(
        "project-update-not-scoped", "app", "app/store.py",
        "'WHERE id = %(id)s AND \"userId\" = %(user_id)s RETURNING id'",
        "'WHERE id = %(id)s AND %(user_id)s IS NOT NULL RETURNING id'",
        (APP + "test_projects.py::test_a_user_cannot_see_or_touch_another_users_project",),
        "a user renames another user's project"),
    Mutant(
        "project-delete-not-scoped", "app", "app/store.py",
        "'WITH gone AS (DELETE FROM avatar_projects WHERE id = %s AND \"userId\" = %s '",
        "'WITH gone AS (DELETE FROM avatar_projects WHERE id = %s AND %s IS NOT NULL '",
        (APP + "test_projects.py::test_a_user_cannot_see_or_touch_another_users_project",),
        "a user deletes another user's project"),
    Mutant(
        "avatar-insert-not-scoped", "app", "app/store.py",
        "'FROM avatar_projects p WHERE p.id = %(projectId)s AND p.\"userId\" = %(userId)s '",
        "'FROM avatar_projects p WHERE p.id = %(projectId)s AND %(userId)s IS NOT NULL '",
        (APP + "test_projects.py::test_a_user_cannot_see_or_touch_another_users_project",),
        "a user adds an avatar to another user's project"),
    Mutant(
        "avatar-read-not-scoped", "app", "app/store.py",
        "f'SELECT {AVATAR_COLUMNS} FROM avatars WHERE id = %s AND \"userId\" = %s'",
        "f'SELECT {AVATAR_COLUMNS} FROM avatars WHERE id = %s AND %s IS NOT NULL'",
        (APP + "test_projects.py::test_a_user_cannot_see_or_touch_another_users_project",),
        "a user reads another user's avatar"),
    Mutant(
        "avatar-delete-not-scoped", "app", "app/store.py",
        "'DELETE FROM avatars WHERE id = %s AND \"userId\" = %s RETURNING id'",
        "'DELETE FROM avatars WHERE id = %s AND %s IS NOT NULL RETURNING id'",
        (APP + "test_projects.py::test_a_user_cannot_see_or_touch_another_users_project",),
        "a user deletes another user's avatar"),
    Mutant(
        "generate-on-foreign-project", "app", "app/store.py",
        "'SELECT id FROM avatar_projects WHERE id = %s AND \"userId\" = %s FOR KEY SHARE'",
        "'SELECT id FROM avatar_projects WHERE id = %s AND %s IS NOT NULL FOR KEY SHARE'",
        (APP + "test_projects.py::test_a_user_cannot_see_or_touch_another_users_project",),
        "a user spends credits generating into another user's project"),
]
