"""db.import: a small tree of each tool, built here, imported, then deployed into a fresh
database with `invoke deploy --env dev`: clean, with the SQL unchanged byte for byte."""

from __future__ import annotations

import pytest

from shipshape.engine import migrations
from shipshape.engine.importers import common
from tests.conftest import run_invoke


def prisma_tree(root):
    for name, sql in [
        ("20240101120000_init", ("-- CreateEnum\nCREATE TYPE \"Mood\" AS ENUM ('OK');\n\n"
         "CREATE TABLE \"User\" (\"id\" SERIAL PRIMARY KEY, \"mood\" \"Mood\" NOT NULL,"
         " \"bio\" TEXT DEFAULT '{% endraw %} {{ x }}');\n")),
        ("20240202120000_add_mood", "-- AlterEnum\nALTER TYPE \"Mood\" ADD VALUE 'SAD';\n"),
        ("20240303120000_drop_bio", "ALTER TABLE \"User\" DROP COLUMN \"bio\";\n"),
    ]:
        (root / "migrations" / name).mkdir(parents=True)
        (root / "migrations" / name / "migration.sql").write_text(sql)
    (root / "migrations" / "migration_lock.toml").write_text('provider = "postgresql"\n')
    return root


def flyway_tree(root):
    root.mkdir(parents=True)
    (root / "V1__create_items.sql").write_text("CREATE TABLE items (id int PRIMARY KEY);\n")
    (root / "V1.1__add_name.sql").write_text("ALTER TABLE items ADD COLUMN name text;\n")
    (root / "U1.1__add_name.sql").write_text("ALTER TABLE items DROP COLUMN name;\n")
    (root / "R__views.sql").write_text("CREATE OR REPLACE VIEW v AS SELECT 1;\n")
    return root


def dbmate_tree(root):
    root.mkdir(parents=True)
    (root / "20240101000000_create_items.sql").write_text(
        "-- migrate:up\nCREATE TABLE items (id int PRIMARY KEY, name text);\n\n"
        "-- migrate:down\nDROP TABLE items;\n")
    (root / "20240102000000_index_items.sql").write_text(
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY items_name ON items (name);\n\n"
        "-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY items_name;\n")
    return root


def golang_tree(root):
    root.mkdir(parents=True)
    (root / "000001_create_items.up.sql").write_text("CREATE TABLE items (id int PRIMARY KEY);\n")
    (root / "000001_create_items.down.sql").write_text("DROP TABLE items;\n")
    (root / "000002_add_price.up.sql").write_text("ALTER TABLE items ADD COLUMN price int;\n")
    (root / "000002_add_price.down.sql").write_text("ALTER TABLE items DROP COLUMN price;\n")
    return root


TREES = {"prisma": prisma_tree, "flyway": flyway_tree, "dbmate": dbmate_tree,
         "golang-migrate": golang_tree}


def empty_sql(root):
    for sub in ("migrations", "seeds", "checks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


@pytest.mark.parametrize("tool", sorted(TREES))
def test_import_then_deploy_is_clean(tool, tmp_path, fresh_dsn, make_target):
    source = TREES[tool](tmp_path / tool)
    out = empty_sql(tmp_path / "sql")
    imported = run_invoke("db.import", "--from", tool, str(source), "--out", str(out))
    assert imported.returncode == 0, imported.stderr
    # the SQL runs unchanged: each rendered template is its header, then the foreign SQL
    loaded = migrations.load(out, make_target(fresh_dsn, "dev").env)
    result = common.convert(tool, source, tmp_path / "again", dry_run=True)
    assert [m.sql.endswith(w.foreign.up) for m, w in zip(loaded, result.written)] == [True] * len(loaded)
    assert [m.name[:4] for m in loaded] == [f"{n:04d}" for n in range(1, len(loaded) + 1)]
    state = {"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")}
    deployed = run_invoke("deploy", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(out),
                          env=state)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr


def test_review_names_what_it_declared(tmp_path):
    out = empty_sql(tmp_path / "sql")
    result = common.convert("prisma", prisma_tree(tmp_path / "p"), out)
    review = "\n".join(result.review())
    assert "0003_drop_bio/migrate: line 1: drop column" in review
    assert "-- shipshape:destructive" in (out / "migrations/0003_drop_bio/migrate.sql.j2").read_text()
    assert "-- shipshape:imported-from prisma 20240202120000_add_mood" in (
        out / "migrations/0002_add_mood/migrate.sql.j2").read_text()
    assert all(f"  000{n}_" in review.split("No rollback")[1] for n in (1, 2, 3))
    assert not (out / "migrations/0001_init/rollback.sql.j2").exists()
    assert "Keep _prisma_migrations in the database" in review
    assert "never drop it" in review


def test_flyway_undo_is_the_rollback_and_repeatables_are_reported(tmp_path):
    result = common.convert("flyway", flyway_tree(tmp_path / "f"), empty_sql(tmp_path / "sql"))
    assert [w.foreign.version for w in result.written] == ["1", "1.1"]
    assert result.written[1].rollback_destructive and result.written[0].rollback is None
    assert any("R__views.sql: repeatable migrations (R__) are not supported" in u
               for u in result.unsupported)


def test_dbmate_transaction_false_becomes_no_transaction(tmp_path):
    out = empty_sql(tmp_path / "sql")
    common.convert("dbmate", dbmate_tree(tmp_path / "d"), out)
    text = (out / "migrations/0002_index_items/migrate.sql.j2").read_text()
    assert "-- shipshape:no-transaction" in text
    assert "-- migrate:down" not in text


def test_dry_run_writes_nothing(tmp_path):
    out = empty_sql(tmp_path / "sql")
    result = run_invoke("db.import", "--from", "golang-migrate", str(golang_tree(tmp_path / "g")),
                        "--out", str(out), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Would import 2" in result.stdout and "0002_add_price/rollback: line 1: drop column" in result.stdout
    assert list((out / "migrations").iterdir()) == []


def test_an_undeclared_destructive_statement_added_later_is_refused(tmp_path, fresh_dsn):
    out = empty_sql(tmp_path / "sql")
    common.convert("golang-migrate", golang_tree(tmp_path / "g"), out)
    later = out / "migrations" / "0003_later"
    later.mkdir()
    (later / "migrate.sql.j2").write_text("DROP TABLE items;\n")
    (later / "rollback.sql.j2").write_text("CREATE TABLE items (id int PRIMARY KEY);\n")
    state = {"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")}
    refused = run_invoke("deploy", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(out), env=state)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "0003_later" in refused.stderr and "shipshape:destructive" in refused.stderr


def test_importing_the_same_tree_twice_is_refused_and_writes_nothing(tmp_path):
    from shipshape.errors import Refused

    out = empty_sql(tmp_path / "sql")
    source = golang_tree(tmp_path / "g")
    common.convert("golang-migrate", source, out)
    with pytest.raises(Refused, match="already holds imported golang-migrate"):
        common.convert("golang-migrate", source, out)
    assert sorted(p.name for p in (out / "migrations").iterdir()) == ["0001_create_items",
                                                                      "0002_add_price"]


def test_an_unknown_tool_is_bad_input(tmp_path):
    result = run_invoke("db.import", "--from", "liquibase", str(tmp_path), "--out", str(tmp_path))
    assert result.returncode == 5 and "prisma, flyway, dbmate, golang-migrate" in result.stderr
