"""Indexes that exist by name but are not what the migrations made: an INVALID index (left
by a failed CREATE UNIQUE INDEX CONCURRENTLY) and an index re-created under the same name
on other columns. Both must show in the catalog snapshot, in its diff and in verify's
findings; a name that merely exists is not enough.
"""

from __future__ import annotations

import psycopg
import pytest

from shipshape import db
from shipshape.engine import catalog, verify
from shipshape.ops import pipeline
from tests.treeutil import small_tree, write_migration

UNIQUE = "items_sku_key_idx"
PLAIN = "items_owner_idx"


@pytest.fixture
def deployed(tmp_path, fresh_dsn, make_target, cache_dir):
    """The small tree plus a migration with a unique and a plain index, deployed (dev)."""
    tree = small_tree(tmp_path / "sql")
    write_migration(tree, "0003_item_indexes",
                    "ALTER TABLE items ADD COLUMN sku text, ADD COLUMN owner text;\n"
                    f"CREATE UNIQUE INDEX {UNIQUE} ON items (sku);\n"
                    f"CREATE INDEX {PLAIN} ON items (owner);\n",
                    "-- shipshape:destructive\n"
                    "ALTER TABLE items DROP COLUMN sku, DROP COLUMN owner;\n")
    target = make_target(fresh_dsn, "dev")
    assert pipeline.deploy(target, tree).exit_code == 0
    return target, tree


def hand(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def snapshot(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        return catalog.snapshot(conn)


def findings(target, tree):
    with db.connect(target) as conn:
        return verify.verify(conn, target, tree)


def leave_invalid_unique_index(dsn: str) -> None:
    """Duplicates, then the unique index built CONCURRENTLY: it fails, and PostgreSQL
    leaves the index behind, same name and definition, marked invalid."""
    hand(dsn, f"DROP INDEX {UNIQUE}",
         "UPDATE items SET sku = 'same'")  # apple and pear, one sku
    with pytest.raises(psycopg.errors.UniqueViolation):
        hand(dsn, f"CREATE UNIQUE INDEX CONCURRENTLY {UNIQUE} ON items (sku)")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass",
                            [UNIQUE]).fetchone() == (False,)


def test_an_invalid_index_is_drift(deployed, fresh_dsn):
    target, tree = deployed
    before = snapshot(fresh_dsn)
    assert before["indexes"][UNIQUE]["valid"] is True

    leave_invalid_unique_index(fresh_dsn)
    after = snapshot(fresh_dsn)
    assert after["indexes"][UNIQUE]["valid"] is False
    assert after["indexes"][UNIQUE]["definition"] == before["indexes"][UNIQUE]["definition"]
    assert [(d.kind, d.name, d.change) for d in catalog.diff(before, after)] == [
        ("index", UNIQUE, "changed")]

    found = findings(target, tree)
    drift = [f for f in found if f.object == f"index {UNIQUE}"]
    assert [f.code for f in drift] == ["DRIFT_CHANGED"], [(f.code, f.object) for f in found]
    assert "valid expected true, found false" in drift[0].message


def test_an_index_with_the_same_name_on_other_columns_is_drift(deployed, fresh_dsn):
    target, tree = deployed
    before = snapshot(fresh_dsn)
    hand(fresh_dsn, f"DROP INDEX {PLAIN}", f"CREATE INDEX {PLAIN} ON items (sku)")
    after = snapshot(fresh_dsn)
    assert after["indexes"][PLAIN]["valid"] is True
    assert [(d.kind, d.name, d.change) for d in catalog.diff(before, after)] == [
        ("index", PLAIN, "changed")]

    found = findings(target, tree)
    assert [(f.code, f.object) for f in found] == [("DRIFT_CHANGED", f"index {PLAIN}")]
    assert "(owner)" in found[0].message and "(sku)" in found[0].message
