"""db.status on a long history: a summary (counts, every migration not applied, the last
few applied), --all for every migration, --json always the full list."""

from __future__ import annotations

import json
import re

import pytest

from shipshape import commands
from tests.conftest import run_invoke
from tests.treeutil import write_migration

COUNT = 40
APPLIED = 33


@pytest.fixture
def long_history(tmp_path, fresh_dsn, make_target, cache_dir):
    tree = tmp_path / "sql"
    for version in range(1, COUNT + 1):
        write_migration(tree, f"{version:04d}_t{version}", f"CREATE TABLE t{version} (id int);\n",
                        f"-- shipshape:destructive\nDROP TABLE t{version};\n")
    commands.migrate(make_target(fresh_dsn), tree, to=APPLIED)
    return tree


def status(fresh_dsn, tree, state, *flags):
    return run_invoke("db.status", "--dsn", fresh_dsn, "--sql-dir", str(tree), *flags,
                      env={"SHIPSHAPE_STATE_DIR": str(state)})


def versions(text: str) -> list[int]:
    return [int(v) for v in re.findall(r"^\W*(\d{4})\W", text, re.M)]


def test_a_long_history_is_summarised(long_history, fresh_dsn, cache_dir):
    result = status(fresh_dsn, long_history, cache_dir)
    assert result.returncode == 2, result.stderr  # pending migrations: problems found
    assert versions(result.stdout) == list(range(APPLIED - 4, COUNT + 1))  # last 5, then pending
    assert f"{COUNT} migrations: {APPLIED} applied, {COUNT - APPLIED} pending." in result.stdout
    assert f"{APPLIED - 5} other applied ones are not shown" in result.stdout
    assert "invoke db.status --all" in result.stdout


def test_all_lists_every_migration_and_json_keeps_the_full_list(long_history, fresh_dsn, cache_dir):
    every = status(fresh_dsn, long_history, cache_dir, "--all")
    assert every.returncode == 2
    assert versions(every.stdout) == list(range(1, COUNT + 1))
    assert "not shown" not in every.stdout
    as_json = status(fresh_dsn, long_history, cache_dir, "--json")
    assert as_json.returncode == 2
    document = json.loads(as_json.stdout)  # one document: the exit-2 report adds none
    listed = document["migrations"]
    assert [m["version"] for m in listed] == list(range(1, COUNT + 1))
    assert [m["state"] for m in listed].count("pending") == COUNT - APPLIED


def test_a_short_history_is_listed_whole(tmp_path, fresh_dsn, make_target, cache_dir):
    tree = tmp_path / "sql"
    for version in (1, 2, 3):
        write_migration(tree, f"{version:04d}_t{version}", f"CREATE TABLE t{version} (id int);\n",
                        f"-- shipshape:destructive\nDROP TABLE t{version};\n")
    commands.migrate(make_target(fresh_dsn), tree)
    result = status(fresh_dsn, tree, cache_dir)
    assert result.returncode == 0, result.stderr
    assert versions(result.stdout) == [1, 2, 3] and "not shown" not in result.stdout


def test_failed_and_changed_migrations_are_always_in_the_summary(long_history, fresh_dsn, make_target):
    target = make_target(fresh_dsn)
    path = long_history / "migrations" / "0002_t2" / "migrate.sql.j2"
    path.write_text("CREATE TABLE t2 (id bigint);\n")
    result = commands.status(target, long_history)
    shown = result.summary()
    assert [e.version for e in shown] == [2, *range(APPLIED - 4, COUNT + 1)]
    assert result.counts == {"applied": APPLIED - 1, "pending": COUNT - APPLIED,
                             "checksum-mismatch": 1}
