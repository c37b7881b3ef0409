"""Seed values are checked against the schema the migrations produce before anything is
applied (issue 10): `creditCost: "eight"` used to pass both dry runs, and the real deploy
migrated, then failed at the seed gate with exit 6 and no AI models (incident 1).
"""

from __future__ import annotations

import psycopg
import pytest

from shipshape import commands
from shipshape.errors import ConfigError
from shipshape.ops import pipeline
from tests.conftest import run_invoke
from tests.treeutil import small_tree, write_migration

BAD_PRICE = ("table: items\nkey: [name]\nset: reference\nrows:\n"
             "  - {name: apple, price: 3}\n"
             "  - name: pear\n"
             "    price: eight\n")  # line 7


def tables(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname <> 'shipshape' ORDER BY 1")]


def applied(dsn: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass('shipshape.history')").fetchone()[0] is None:
            return []
        return [r[0] for r in conn.execute("SELECT version FROM shipshape.history")]


@pytest.fixture
def bad_tree(tmp_path):
    tree = small_tree(tmp_path / "sql")
    (tree / "seeds" / "items.yaml").write_text(BAD_PRICE)
    return tree


def cli(*args, state):
    return run_invoke(*args, env={"SHIPSHAPE_STATE_DIR": str(state)})


def test_seed_dry_run_exits_5_naming_file_and_line(bad_tree, fresh_dsn, cache_dir):
    result = cli("db.seed", "--dry-run", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir",
                 str(bad_tree), state=cache_dir)
    assert result.returncode == 5, result.stderr
    assert f"{bad_tree / 'seeds' / 'items.yaml'}:7: price: 'eight' is not a valid integer" \
        in result.stderr
    assert "invoke db.seed --env dev --dry-run" in result.stderr
    assert "INSERT" not in result.stdout  # no script for rows that would not go in
    assert tables(fresh_dsn) == []


@pytest.mark.parametrize("value", ["3.5", "1000.0"])
def test_a_fraction_for_an_integer_column_is_refused_not_rounded(tmp_path, fresh_dsn, value,
                                                                 cache_dir):
    """Sent as a float, 3.5 went into the integer column as 4, silently."""
    tree = small_tree(tmp_path / "sql")
    (tree / "seeds" / "items.yaml").write_text(BAD_PRICE.replace("eight", value))
    result = cli("db.seed", "--dry-run", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir",
                 str(tree), state=cache_dir)
    assert result.returncode == 5, result.stderr
    assert f"items.yaml:7: price: {float(value)!r} is not a valid integer" in result.stderr


def test_a_fraction_for_a_numeric_column_is_kept_exactly(tmp_path, fresh_dsn, make_target,
                                                         cache_dir):
    tree = small_tree(tmp_path / "sql")
    write_migration(tree, "0003_item_weight", "ALTER TABLE items ADD COLUMN weight numeric;\n",
                    "-- shipshape:destructive\nALTER TABLE items DROP COLUMN weight;\n")
    (tree / "seeds" / "items.yaml").write_text(
        "table: items\nkey: [name]\nset: reference\nrows:\n"
        "  - {name: apple, price: 3, weight: 0.1}\n")
    target = make_target(fresh_dsn, "dev")
    assert pipeline.deploy(target, tree).exit_code == 0
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT weight::text FROM items").fetchone() == ("0.1",)
    assert pipeline.deploy(target, tree).exit_code == 0  # and it is not a difference


def test_seed_dry_run_without_a_database_rehearses_on_a_scratch_server(bad_tree, cache_dir):
    result = cli("db.seed", "--dry-run", "--env", "dev", "--sql-dir", str(bad_tree),
                 state=cache_dir)
    assert result.returncode == 5, result.stderr
    assert "items.yaml:7: price: 'eight'" in result.stderr


def test_deploy_dry_run_exits_5_naming_file_and_line(bad_tree, fresh_dsn, cache_dir):
    result = cli("deploy", "--dry-run", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir",
                 str(bad_tree), state=cache_dir)
    assert result.returncode == 5, result.stderr
    assert "items.yaml:7: price: 'eight' is not a valid integer" in result.stderr
    assert tables(fresh_dsn) == []


def test_a_real_deploy_exits_5_having_migrated_nothing(bad_tree, fresh_dsn, cache_dir):
    result = cli("deploy", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(bad_tree),
                 state=cache_dir)
    assert result.returncode == 5, result.stderr
    assert "items.yaml:7" in result.stderr
    assert tables(fresh_dsn) == []
    assert applied(fresh_dsn) == []


def test_a_deployed_database_keeps_its_schema_and_rows_when_a_new_seed_value_is_bad(
        tmp_path, fresh_dsn, make_target, cache_dir):
    tree = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn, "dev")
    assert pipeline.deploy(target, tree).exit_code == 0
    write_migration(tree, "0003_item_weight",
                    "ALTER TABLE items ADD COLUMN weight integer;\n",
                    "-- shipshape:destructive\nALTER TABLE items DROP COLUMN weight;\n")
    (tree / "seeds" / "items.yaml").write_text(
        "table: items\nkey: [name]\nset: reference\nrows:\n"
        "  - {name: apple, price: 3, weight: heavy}\n  - {name: pear, price: 5, weight: 2}\n")

    with pytest.raises(ConfigError) as error:
        pipeline.deploy(target, tree)
    assert "items.yaml:5: weight: 'heavy' is not a valid integer" in str(error.value)
    assert applied(fresh_dsn) == [1, 2]  # 0003 was not applied


def test_an_override_is_named_by_its_own_line(tmp_path, fresh_dsn, make_target, cache_dir):
    tree = small_tree(tmp_path / "sql")
    (tree / "seeds" / "items.yaml").write_text(
        "table: items\nkey: [name]\nset: reference\nrows:\n"
        "  - {name: apple, price: 3}\n"
        "overrides:\n"
        "  dev:\n"
        "    - name: apple\n"
        "      price: cheap\n")  # line 9
    with pytest.raises(ConfigError) as error:
        commands.deploy_script(make_target(fresh_dsn, "dev"), tree)
    assert "items.yaml:9: price: 'cheap' is not a valid integer" in str(error.value)
    # the same file for an env without the override is fine
    assert "INSERT" in commands.deploy_script(make_target(fresh_dsn, "staging"), tree)


def test_a_row_the_schema_refuses_is_named_by_its_line(tmp_path, fresh_dsn, make_target,
                                                      cache_dir):
    """Every value casts, but the row breaks a CHECK: the row's line and the reason."""
    tree = small_tree(tmp_path / "sql")
    write_migration(tree, "0003_price_check",
                    "ALTER TABLE items ADD CONSTRAINT price_positive CHECK (price > 0);\n",
                    "ALTER TABLE items DROP CONSTRAINT price_positive;\n")
    (tree / "seeds" / "items.yaml").write_text(
        "table: items\nkey: [name]\nset: reference\nrows:\n"
        "  - {name: apple, price: 3}\n  - {name: pear, price: -5}\n  - {name: fig, nope: 1}\n")
    with pytest.raises(ConfigError) as error:
        commands.seed_script(make_target(fresh_dsn, "dev").env, tree,
                             make_target(fresh_dsn, "dev"))
    details = error.value.details
    assert details == [(f"{tree / 'seeds' / 'items.yaml'}:7: table items has no column "
                       f"'nope' in the schema the migrations produce")], details
    (tree / "seeds" / "items.yaml").write_text(
        "table: items\nkey: [name]\nset: reference\nrows:\n"
        "  - {name: apple, price: 3}\n  - {name: pear, price: -5}\n")
    with pytest.raises(ConfigError) as error:
        commands.seed_script(make_target(fresh_dsn, "dev").env, tree,
                             make_target(fresh_dsn, "dev"))
    [problem] = error.value.details
    assert problem.startswith(f"{tree / 'seeds' / 'items.yaml'}:6: row pear: ")
    assert "price_positive" in problem


def test_good_seeds_pass_and_the_rehearsal_is_cached(tmp_path, fresh_dsn, make_target,
                                                    cache_dir):
    tree = small_tree(tmp_path / "sql")
    target = make_target(fresh_dsn, "dev")
    script = commands.seed_script(target.env, tree, target)
    assert "INSERT" in script and "pear" in script
    assert len(list((cache_dir / "cache").glob("seeds-*.ok"))) == 1
    assert tables(fresh_dsn) == []  # the rehearsal wrote nothing to the target
    assert pipeline.deploy(target, tree).exit_code == 0
    assert len(list((cache_dir / "cache").glob("seeds-*.ok"))) == 1  # the same key: reused
