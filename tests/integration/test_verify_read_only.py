"""Verify (and doctor, which runs it) is read-only: a data check that tries to write is
an error finding, and nothing it tried is left; verify leaves no transaction open.
"""

from __future__ import annotations

import psycopg

from shipshape import db
from shipshape.engine import verify
from shipshape.ops import doctor, pipeline
from tests.treeutil import small_tree

WRITING_CHECK = """\
-- description: a check that deletes what it reports
-- severity: error
-- fix: never write in a check
WITH gone AS (DELETE FROM items RETURNING name) SELECT name FROM gone
"""


def count(dsn) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM items").fetchone()[0]


def test_a_check_that_writes_is_refused_by_the_read_only_transaction(
        tmp_path, fresh_dsn, make_target, cache_dir):
    tree = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn, "dev")
    assert pipeline.deploy(target, tree).exit_code == 0
    (tree / "checks" / "deleting.sql.j2").write_text(WRITING_CHECK)
    assert count(fresh_dsn) == 2

    with db.connect(target) as conn:
        found = verify.verify(conn, target, tree)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    errors = [f for f in found if f.object == "check deleting"]
    assert [f.code for f in errors] == ["CHECK_ERROR"], found
    assert "read-only transaction" in errors[0].message
    assert count(fresh_dsn) == 2

    diagnosis = doctor.diagnose(target, tree)
    assert "CHECK_ERROR" in {f.code for f in diagnosis.findings}
    assert count(fresh_dsn) == 2
