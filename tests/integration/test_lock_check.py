"""The lock check on a table with 2 million real rows: each rule refuses in prod with the
table's size and the safe rewrite, passes in local, and `lock-ok` with a reason passes
and is recorded in the history (issue #12).

The table is built once for the module (generate_series, VACUUM ANALYZE so that
pg_class.reltuples is exact); nothing here applies a refused migration, so it stays as
built. The one test that applies a migration (lock-ok) works on a copy.
"""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from shipshape import db
from shipshape.engine import history, migrations
from shipshape.settings import load_environment
from tests.conftest import ROOT, create_database, drop_database, dsn_for, run_invoke
from tests.treeutil import write_migration

ROWS = 2_000_000
TABLES = """
CREATE TABLE small_refs (id bigint PRIMARY KEY);
CREATE TABLE big_items (id bigint PRIMARY KEY, n integer, note text, ref bigint);
"""

# rule -> (the naive statement, what the safe rewrite must say)
RULES = {
    "create-index-nonconcurrent": ("CREATE INDEX big_items_n_idx ON big_items (n);",
                                   "CREATE INDEX CONCURRENTLY"),
    "add-fk-validating": (("ALTER TABLE big_items ADD CONSTRAINT big_items_ref_fkey "
                           "FOREIGN KEY (ref) REFERENCES small_refs (id);"),
                          "FOREIGN KEY ... NOT VALID`"),
    "add-check-validating": (("ALTER TABLE big_items ADD CONSTRAINT big_items_n_check "
                              "CHECK (n >= 0);"), "CHECK (...) NOT VALID`, then `VALIDATE"),
    "set-not-null": ("ALTER TABLE big_items ALTER COLUMN n SET NOT NULL;",
                     "CHECK (col IS NOT NULL) NOT VALID"),
    "change-column-type": (("-- shipshape:destructive\n"
                            "ALTER TABLE big_items ALTER COLUMN n TYPE bigint;"),
                           "Add a new column of the new type, backfill it in batches"),
    "add-column-volatile-default": (("ALTER TABLE big_items ADD COLUMN token uuid "
                                     "DEFAULT gen_random_uuid();"),
                                    "backfill existing rows in batches"),
}


def base_tree(root):
    (root / "seeds").mkdir(parents=True)
    (root / "checks").mkdir()
    write_migration(root, "0001_tables", TABLES,
                    "-- shipshape:destructive\nDROP TABLE big_items;\nDROP TABLE small_refs;\n")
    return root


@pytest.fixture(scope="module")
def big(admin_dsn, tmp_path_factory):
    """A database at 0001 with 2 million rows in big_items; not stamped with an env."""
    name = create_database(admin_dsn)
    dsn = dsn_for(admin_dsn, name)
    tree = base_tree(tmp_path_factory.mktemp("base") / "sql")
    env = load_environment("local", config_dir=ROOT)
    with psycopg.connect(dsn) as conn, db.advisory_lock(conn, "10s"):
        migrations.migrate(conn, env, migrations.load(tree, env))
        conn.execute("INSERT INTO big_items (id, n, note) SELECT g, g %% 1000, 'row ' || g "
                     "FROM generate_series(1, %s) AS g", [ROWS])
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE big_items")
    yield {"admin": admin_dsn, "name": name, "dsn": dsn}
    drop_database(admin_dsn, name)


@pytest.fixture
def tree(tmp_path):
    return base_tree(tmp_path / "sql")


def size(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT pg_total_relation_size('big_items')").fetchone()[0]


def versions(dsn):
    with psycopg.connect(dsn) as conn:
        return [v for (v,) in conn.execute("SELECT version FROM shipshape.history ORDER BY 1")]


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_refuses_in_prod_with_the_size_and_the_safe_rewrite(big, tree, state, rule):
    statement, rewrite = RULES[rule]
    write_migration(tree, "0002_naive", statement + "\n", "SELECT 1;\n")
    before = size(big["dsn"])
    result = run_invoke("deploy", "--env", "prod", "--dsn", big["dsn"], "--sql-dir", str(tree),
                        "--set", "allow_destructive=true", env=state)
    assert result.returncode == 3, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    assert "0002_naive line " in message and f"[{rule}]" in message
    assert "on big_items (2,000,000 rows, " in message
    assert f"{before / 1048576:,.0f} MB" in message
    assert "lock_check_max_rows=100000" in message
    assert rewrite in message
    assert f"`-- shipshape:lock-ok {rule} <reason>`" in message
    assert versions(big["dsn"]) == [1]  # nothing applied
    assert size(big["dsn"]) == before


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_passes_in_local(big, tree, state, rule):
    """local's thresholds are off: db.lint shows the finding, with the size, and no refusal."""
    write_migration(tree, "0002_naive", RULES[rule][0] + "\n", "SELECT 1;\n")
    result = run_invoke("db.lint", "--env", "local", "--dsn", big["dsn"], "--sql-dir",
                        str(tree), "--json", env=state)
    assert result.returncode == 0, result.stdout + result.stderr
    found = [f for f in json.loads(result.stdout)["findings"] if f["rule"] == rule]
    big_one = next(f for f in found if f["relation"] == "big_items")
    assert big_one["rows"] == ROWS and big_one["refused"] is False and big_one["over"] == []
    # the same finding is refused by prod's thresholds
    prod = run_invoke("db.lint", "--env", "prod", "--dsn", big["dsn"], "--sql-dir",
                      str(tree), "--json", env=state)
    assert prod.returncode == 2
    assert any(f["rule"] == rule and f["refused"] for f in json.loads(prod.stdout)["findings"])


def test_the_safe_rewrites_pass_the_prod_check(big, tree, state):
    write_migration(tree, "0002_safe",
                    "-- shipshape:no-transaction\n"
                    "CREATE INDEX CONCURRENTLY big_items_n_idx ON big_items (n);\n"
                    "ALTER TABLE big_items ADD CONSTRAINT big_items_ref_fkey FOREIGN KEY (ref) "
                    "REFERENCES small_refs (id) NOT VALID;\n"
                    "ALTER TABLE big_items VALIDATE CONSTRAINT big_items_ref_fkey;\n"
                    "ALTER TABLE big_items ADD CONSTRAINT big_items_n_nn CHECK (n IS NOT NULL) "
                    "NOT VALID;\n"
                    "ALTER TABLE big_items ADD COLUMN token uuid;\n",
                    "SELECT 1;\n")
    result = run_invoke("db.lint", "--env", "prod", "--dsn", big["dsn"], "--sql-dir",
                        str(tree), "--json", env=state)
    assert result.returncode == 0, result.stdout + result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert findings and {f["rule"] for f in findings} == {"brief-lock"}
    assert not any(f["refused"] for f in findings)


def test_lock_ok_with_a_reason_passes_and_is_recorded(big, tree, state, admin_dsn):
    copy = create_database(admin_dsn)
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(copy)))
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(copy), sql.Identifier(big["name"])))
        dsn = dsn_for(admin_dsn, copy)
        write_migration(tree, "0002_check_n",
                        "-- shipshape:lock-ok add-check-validating runs in the nightly "
                        "window, writes paused\n" + RULES["add-check-validating"][0] + "\n",
                        "ALTER TABLE big_items DROP CONSTRAINT big_items_n_check;\n")
        result = run_invoke("deploy", "--env", "prod", "--dsn", dsn, "--sql-dir", str(tree),
                            env=state)
        assert result.returncode == 0, result.stdout + result.stderr
        with psycopg.connect(dsn) as conn:
            recorded = history.read_history(conn)[2]
        assert recorded["lock_ok"] == ("add-check-validating: runs in the nightly window, "
                                       "writes paused")
        assert versions(dsn) == [1, 2]
    finally:
        drop_database(admin_dsn, copy)


@pytest.mark.parametrize("directive, complaint", [
    ("-- shipshape:lock-ok no-such-rule because", "names no lock rule"),
    ("-- shipshape:lock-ok add-check-validating", "needs a reason"),
])
def test_a_bad_lock_ok_is_bad_input(big, tree, state, directive, complaint):
    write_migration(tree, "0002_naive", directive + "\n" + RULES["add-check-validating"][0]
                    + "\n", "SELECT 1;\n")
    result = run_invoke("db.lint", "--env", "prod", "--dsn", big["dsn"], "--sql-dir",
                        str(tree), env=state)
    assert result.returncode == 5
    message = " ".join(result.stderr.split())
    assert complaint in message and "0002_naive" in message


def test_lock_ok_accepts_only_the_rule_it_names(big, tree, state):
    """A migration's `lock-ok` for one rule is no licence for its other statements: the
    index built without CONCURRENTLY next to the accepted CHECK is still refused."""
    write_migration(tree, "0002_two",
                    "-- shipshape:lock-ok add-check-validating runs in the nightly window\n"
                    + RULES["add-check-validating"][0] + "\n"
                    + RULES["create-index-nonconcurrent"][0] + "\n", "SELECT 1;\n")
    result = run_invoke("db.lint", "--env", "prod", "--dsn", big["dsn"], "--sql-dir",
                        str(tree), "--json", env=state)
    assert result.returncode == 2, result.stdout + result.stderr
    found = {f["rule"]: f for f in json.loads(result.stdout)["findings"]
             if f["relation"] == "big_items"}
    assert found["add-check-validating"]["accepted"] == "runs in the nightly window"
    assert found["add-check-validating"]["refused"] is False
    assert found["create-index-nonconcurrent"]["accepted"] == ""
    assert found["create-index-nonconcurrent"]["refused"] is True
