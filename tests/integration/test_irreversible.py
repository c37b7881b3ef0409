"""Forward-only migrations, declared with `-- shipshape:irreversible <reason>`: no fake
rollback file, and a rollback across one is refused (exit 3) with nothing changed."""

from __future__ import annotations

import psycopg
import pytest

from shipshape import db
from shipshape.engine import history, migrations
from shipshape.errors import Refused
from tests.conftest import run_invoke
from tests.treeutil import skip_forward_only, write_migration

REASON = "enum values cannot be removed from a type in PostgreSQL"


def forward_only_tree(root):
    write_migration(root, "0001_items", "CREATE TABLE items (id int PRIMARY KEY);\n",
                    "-- shipshape:destructive\nDROP TABLE items;\n")
    directory = root / "migrations" / "0002_mood"
    directory.mkdir(parents=True)
    (directory / "migrate.sql.j2").write_text(
        f"-- shipshape:irreversible {REASON}\nCREATE TYPE mood AS ENUM ('ok');\n"
        "ALTER TYPE mood ADD VALUE 'sad';\n")
    write_migration(root, "0003_note", "ALTER TABLE items ADD COLUMN note text;\n",
                    "-- shipshape:destructive\nALTER TABLE items DROP COLUMN note;\n")
    return root


def test_a_declared_forward_only_migration_needs_no_rollback_file(tmp_path, make_target):
    tree = forward_only_tree(tmp_path / "sql")
    loaded = migrations.load(tree, make_target("postgresql://unused/x", "dev").env)
    assert [m.irreversible for m in loaded] == ["", REASON, ""]
    assert loaded[1].rollback_sql == ""


def test_an_undeclared_missing_rollback_is_still_refused(tmp_path):
    tree = forward_only_tree(tmp_path / "sql")
    (tree / "migrations" / "0003_note" / "rollback.sql.j2").unlink()
    with pytest.raises(Refused) as caught:
        migrations.discover(tree)
    assert any("0003_note: missing rollback.sql.j2" in d for d in caught.value.details)


@pytest.mark.parametrize("text, complaint", [
    ("-- shipshape:irreversible\nSELECT 1;\n", "needs a reason"),
    (f"-- shipshape:irreversible {REASON}\nSELECT 1;\n", "keep one or the other"),
])
def test_a_malformed_declaration_is_refused(tmp_path, text, complaint):
    tree = tmp_path / "sql"
    write_migration(tree, "0001_x", text, "SELECT 1;\n")
    if complaint == "needs a reason":
        (tree / "migrations" / "0001_x" / "rollback.sql.j2").unlink()
    with pytest.raises(Refused) as caught:
        migrations.discover(tree)
    assert any(complaint in d for d in caught.value.details)


def test_rollback_across_it_is_refused_and_changes_nothing(tmp_path, fresh_dsn, make_target):
    tree = forward_only_tree(tmp_path / "sql")
    target = make_target(fresh_dsn, "dev", allow_destructive="true")
    loaded = migrations.load(tree, target.env)
    with db.connect(target) as conn:
        migrations.migrate(conn, target.env, loaded)
        with pytest.raises(Refused) as caught:
            migrations.rollback(conn, target.env, loaded, 0)
        assert "0002 0002_mood: " + REASON in caught.value.details
        assert sorted(history.read_history(conn)) == [1, 2, 3]
        done = migrations.rollback(conn, target.env, loaded, 2)  # above it: fine
        assert [m.version for m in done] == [3]


def test_db_rollback_exits_3_naming_it(tmp_path, fresh_dsn):
    tree = forward_only_tree(tmp_path / "sql")
    state = {"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")}
    common = ("--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree))
    deployed = run_invoke("db.migrate", *common, env=state)
    assert deployed.returncode == 0, deployed.stderr
    for extra in (("--dry-run",), ("--yes",)):
        refused = run_invoke("db.rollback", "--to", "0", *common, *extra, env=state)
        assert refused.returncode == 3, refused.stderr
        assert "0002_mood" in refused.stderr and REASON in refused.stderr
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM shipshape.history").fetchone() == (3,)


def test_the_round_trip_test_skips_it_by_declaration_visibly(tmp_path, make_target):
    loaded = migrations.load(forward_only_tree(tmp_path / "sql"),
                             make_target("postgresql://unused/x", "dev").env)
    with pytest.warns(UserWarning, match=f"0002_mood: declared irreversible \\({REASON}\\)"):
        assert [skip_forward_only(m) for m in loaded] == [False, True, False]


def test_the_psql_rollback_script_stops_at_it(tmp_path, fresh_dsn):
    tree = forward_only_tree(tmp_path / "sql")
    out = tmp_path / "out"
    rendered = run_invoke("render", "--env", "dev", "--sql-dir", str(tree), "--out", str(out),
                          env={"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")})
    assert rendered.returncode == 0, rendered.stderr
    script = (out / "rollback.sql").read_text()
    mood = script.split("rollback 0002_mood")[1].split("-- ==== rollback")[0]
    assert "RAISE EXCEPTION" in mood and REASON in mood and "DELETE" not in mood.upper()
    assert script.index("rollback 0003_note") < script.index("rollback 0002_mood")
