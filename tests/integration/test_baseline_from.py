"""db.baseline --from TOOL: adopt a database another tool migrated, by that tool's own
history mapped through imported-from, only after the same schema proof as --version."""

from __future__ import annotations

import json
import shutil

import psycopg
import pytest

from shipshape.engine.importers import common
from tests.conftest import run_invoke
from tests.integration.test_import import (
    dbmate_tree,
    empty_sql,
    flyway_tree,
    golang_tree,
    prisma_tree,
)


def run_sql(dsn, *statements):
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def history(dsn):
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass('shipshape.history')").fetchone()[0] is None:
            return []
        return [v for (v,) in conn.execute("SELECT version FROM shipshape.history ORDER BY 1")]


def deploy(dsn, out, tmp_path):
    return run_invoke("deploy", "--env", "dev", "--dsn", dsn, "--sql-dir", str(out),
                      env={"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")})


def verify_json(dsn, out, tmp_path):
    return run_invoke("db.verify", "--json", "--env", "dev", "--dsn", dsn, "--sql-dir", str(out),
                      env={"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")})


def table_exists(dsn, name) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()[0]


def assert_kept_and_ignored(dsn, out, table, tmp_path):
    """verify is clean with the foreign history table in place; --json lists it."""
    verified = verify_json(dsn, out, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    document = json.loads(verified.stdout)
    assert document["findings"] == []
    assert {"object": f"table {table}", "status": "ignored (declared)",
            "message": f"table {table} is unexpected."} in document["ignored"]
    assert table_exists(dsn, table)


def baseline(dsn, out, tool, tmp_path):
    return run_invoke("db.baseline", "--from", tool, "--env", "dev", "--dsn", dsn,
                      "--sql-dir", str(out), env={"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")})


@pytest.fixture
def golang(tmp_path, fresh_dsn):
    source = golang_tree(tmp_path / "g")
    out = empty_sql(tmp_path / "sql")
    common.convert("golang-migrate", source, out)
    run_sql(fresh_dsn, (source / "000001_create_items.up.sql").read_text(),
            (source / "000002_add_price.up.sql").read_text(),
            "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)")
    return out


def test_golang_migrate_history_is_adopted_after_the_proof(golang, fresh_dsn, tmp_path):
    run_sql(fresh_dsn, "INSERT INTO schema_migrations VALUES (2, false)")
    done = baseline(fresh_dsn, golang, "golang-migrate", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert history(fresh_dsn) == [1, 2]
    # the old tool's table is kept, and it is no drift: the tree was imported from
    # golang-migrate, so its history table is outside what the migrations own
    assert_kept_and_ignored(fresh_dsn, golang, "schema_migrations", tmp_path)
    # a new migration after the import applies normally, next to it
    added = golang / "migrations" / "0003_add_stock"
    added.mkdir()
    (added / "migrate.sql.j2").write_text("ALTER TABLE items ADD COLUMN stock integer;\n")
    (added / "rollback.sql.j2").write_text(
        "-- shipshape:destructive\nALTER TABLE items DROP COLUMN stock;\n")
    deployed = deploy(fresh_dsn, golang, tmp_path)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert history(fresh_dsn) == [1, 2, 3]
    assert_kept_and_ignored(fresh_dsn, golang, "schema_migrations", tmp_path)
    # retiring it stays possible, as a migration of its own
    retire = golang / "migrations" / "0004_retire_golang_migrate"
    retire.mkdir()
    (retire / "migrate.sql.j2").write_text(
        "-- shipshape:irreversible golang-migrate's history is not kept\n"
        "-- shipshape:destructive\nDROP TABLE IF EXISTS schema_migrations;\n")
    deployed = deploy(fresh_dsn, golang, tmp_path)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert table_exists(fresh_dsn, "schema_migrations") is False


def test_without_the_imported_tree_the_foreign_table_is_drift(golang, fresh_dsn, tmp_path):
    """The boundary knows the table because the tree says where it came from: the same
    migrations without their imported-from lines make it an unexpected object again."""
    run_sql(fresh_dsn, "INSERT INTO schema_migrations VALUES (2, false)")
    plain = tmp_path / "plain"
    shutil.copytree(golang, plain)
    for migrate in (plain / "migrations").glob("*/migrate.sql.j2"):
        migrate.write_text("\n".join(line for line in migrate.read_text().splitlines()
                                     if "shipshape:imported-from" not in line) + "\n")
    by_version = ("db.baseline", "--version", "2", "--env", "dev", "--dsn", fresh_dsn,
                  "--sql-dir")
    state = {"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")}
    refused = run_invoke(*by_version, str(plain), env=state)
    assert refused.returncode == 3 and "table schema_migrations is unexpected" in refused.stderr, \
        refused.stdout + refused.stderr
    assert history(fresh_dsn) == []
    # the imported tree declares it: the same baseline, by version, is proved and recorded
    done = run_invoke(*by_version, str(golang), env=state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert history(fresh_dsn) == [1, 2]
    assert_kept_and_ignored(fresh_dsn, golang, "schema_migrations", tmp_path)


def test_a_dirty_golang_migrate_history_is_refused(golang, fresh_dsn, tmp_path):
    run_sql(fresh_dsn, "INSERT INTO schema_migrations VALUES (2, true)")
    refused = baseline(fresh_dsn, golang, "golang-migrate", tmp_path)
    assert refused.returncode == 3 and "dirty" in refused.stderr, refused.stderr
    assert history(fresh_dsn) == []


def test_a_schema_that_is_not_what_the_history_says_is_refused(golang, fresh_dsn, tmp_path):
    run_sql(fresh_dsn, "INSERT INTO schema_migrations VALUES (2, false)",
            "ALTER TABLE items DROP COLUMN price")
    refused = baseline(fresh_dsn, golang, "golang-migrate", tmp_path)
    assert refused.returncode == 3 and "price" in refused.stderr, refused.stderr
    assert history(fresh_dsn) == []


def test_prisma_history_maps_finished_migrations(tmp_path, fresh_dsn):
    source = prisma_tree(tmp_path / "p")
    out = empty_sql(tmp_path / "sql")
    common.convert("prisma", source, out)
    names = sorted(p.name for p in (source / "migrations").iterdir() if p.is_dir())
    run_sql(fresh_dsn, *[(source / "migrations" / n / "migration.sql").read_text() for n in names[:2]],
            "CREATE TABLE _prisma_migrations (id text PRIMARY KEY, migration_name text NOT NULL,"
            " started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz,"
            " rolled_back_at timestamptz)",
            f"INSERT INTO _prisma_migrations VALUES ('a', '{names[0]}', now(), now(), NULL),"
            f" ('b', '{names[1]}', now(), now(), NULL), ('c', '{names[2]}', now(), NULL, now())")
    done = baseline(fresh_dsn, out, "prisma", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert history(fresh_dsn) == [1, 2]
    # the third (rolled back in Prisma) is applied by shipshape; _prisma_migrations stays
    deployed = deploy(fresh_dsn, out, tmp_path)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert history(fresh_dsn) == [1, 2, 3]
    assert_kept_and_ignored(fresh_dsn, out, "_prisma_migrations", tmp_path)


def test_flyway_history_counts_successful_versions_and_undos(tmp_path, fresh_dsn):
    source = flyway_tree(tmp_path / "f")
    out = empty_sql(tmp_path / "sql")
    common.convert("flyway", source, out)
    run_sql(fresh_dsn, (source / "V1__create_items.sql").read_text(),
            "CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY, version text,"
            " type text NOT NULL, success boolean NOT NULL)",
            "INSERT INTO flyway_schema_history VALUES (1, '1', 'SQL', true), (2, '1.1', 'SQL', true),"
            " (3, '1.1', 'UNDO_SQL', true), (4, NULL, 'SQL', true)")
    done = baseline(fresh_dsn, out, "flyway", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert history(fresh_dsn) == [1]
    deployed = deploy(fresh_dsn, out, tmp_path)  # the undone 1.1 is applied by shipshape
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert_kept_and_ignored(fresh_dsn, out, "flyway_schema_history", tmp_path)


def test_dbmate_history_and_an_unknown_version_is_refused(tmp_path, fresh_dsn):
    source = dbmate_tree(tmp_path / "d")
    out = empty_sql(tmp_path / "sql")
    common.convert("dbmate", source, out)
    run_sql(fresh_dsn, "CREATE TABLE items (id int PRIMARY KEY, name text)",
            "CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY)",
            "INSERT INTO schema_migrations VALUES ('20240101000000'), ('20991231000000')")
    refused = baseline(fresh_dsn, out, "dbmate", tmp_path)
    assert refused.returncode == 3 and "20991231000000" in refused.stderr, refused.stderr
    run_sql(fresh_dsn, "DELETE FROM schema_migrations WHERE version = '20991231000000'")
    done = baseline(fresh_dsn, out, "dbmate", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert history(fresh_dsn) == [1]
    deployed = deploy(fresh_dsn, out, tmp_path)  # the rest of the tree, by shipshape
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert_kept_and_ignored(fresh_dsn, out, "schema_migrations", tmp_path)
