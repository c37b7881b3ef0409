"""Expand and contract: the phase directive, the history's phase column, `deploy --phase`
and the refusal of a contract migration while an older app release is alive (issue #12).

The replicas here are rows of shipshape.app_instances written as the app writes them;
tests/app/test_rolling_releases.py runs two real app processes instead.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from shipshape import commands, db
from shipshape.engine import history as engine_history
from shipshape.engine import migrations
from shipshape.errors import ConfigError, Refused
from tests.conftest import ROOT, run_invoke
from tests.treeutil import small_tree, write_migration

# The heartbeat table as migration 0012_app_instances creates it (without the app role's
# grant: these trees have no app role).
INSTANCES = """
CREATE TABLE shipshape.app_instances (
    instance text PRIMARY KEY, release integer NOT NULL, host text NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL DEFAULT now(), last_seen timestamptz NOT NULL DEFAULT now());
"""


@pytest.fixture
def tree(tmp_path):
    """0001, 0002 expand (small_tree), 0003 the heartbeat table, 0004 a contract migration
    (a tighter check, which breaks a release that writes negative prices), 0005 an expand
    one after it: release 0005 is the one that no longer needs what 0004 removes."""
    root = small_tree(tmp_path / "sql")
    write_migration(root, "0003_app_instances", INSTANCES,
                    "-- shipshape:destructive\nDROP TABLE shipshape.app_instances;\n")
    write_migration(root, "0004_price_positive",
                    "-- shipshape:phase contract\n"
                    "ALTER TABLE items ADD CONSTRAINT items_price_check CHECK (price >= 0);\n",
                    "ALTER TABLE items DROP CONSTRAINT items_price_check;\n")
    write_migration(root, "0005_item_note", "ALTER TABLE items ADD COLUMN note text;\n",
                    "-- shipshape:destructive\nALTER TABLE items DROP COLUMN note;\n")
    return root


def fetch(dsn, query, params=None):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def register(dsn, instance, release, *, seconds_ago=0):
    """A replica's heartbeat, as app/instances.py writes it."""
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO shipshape.app_instances (instance, release, host, last_seen) "
                     "VALUES (%s, %s, 'node-a', now() - make_interval(secs => %s))",
                     [instance, release, seconds_ago])


def history(dsn):
    return fetch(dsn, "SELECT version, phase FROM shipshape.history ORDER BY version")


def test_phase_directive_is_read_and_expand_is_the_default(tree, make_target):
    loaded = migrations.load(tree, make_target("postgresql://unused").env)
    assert {m.version: m.phase for m in loaded} == {1: "expand", 2: "expand", 3: "expand",
                                                    4: "contract", 5: "expand"}


def test_an_unknown_phase_is_bad_input_naming_the_file(tree, make_target):
    path = tree / "migrations" / "0005_item_note" / "migrate.sql.j2"
    path.write_text("-- shipshape:phase shrink\nALTER TABLE items ADD COLUMN note text;\n")
    # load() renders nothing (a no-op run renders nothing); prepare, before any write, refuses
    env = make_target("postgresql://unused").env
    loaded = migrations.load(tree, env)
    with pytest.raises(ConfigError) as error:
        migrations.prepared(loaded, env)
    assert str(path) in str(error.value)
    assert "`-- shipshape:phase contract`" in str(error.value)


def test_every_shipped_migration_is_expand(make_target):
    """The Avatar Creator's migrations only add (tables, constant-default columns, indexes,
    grants): each keeps the release before it working."""
    loaded = migrations.load(ROOT / "sql", make_target("postgresql://unused").env)
    assert loaded[-1].name == "0012_app_instances"
    assert {m.phase for m in loaded} == {"expand"}


def test_expand_phase_defers_the_contract_migrations(fresh_dsn, tree, state):
    result = run_invoke("deploy", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree),
                        "--phase", "expand", "--json", env=state)
    assert result.returncode == 0, result.stderr + result.stdout
    assert history(fresh_dsn) == [(1, "expand"), (2, "expand"), (3, "expand"), (5, "expand")]
    # verify passed with the contract migration pending; the contract gate names the next step
    gates = {g["name"]: g for g in json.loads(result.stdout)["gates"]}
    assert gates["verify"]["status"] == "ok" and gates["contract"]["status"] == "skipped"
    assert "0004_price_positive wait(s) for the contract phase" in gates["contract"]["detail"]
    assert "a release built for 0004 or later" in gates["contract"]["detail"]
    assert "`invoke deploy --env dev --phase contract`" in gates["contract"]["detail"]
    assert fetch(fresh_dsn, "SELECT to_version, result FROM shipshape.deployments") == [(5, "ok")]
    # db.verify between the phases: still pending (exit 2), as a warning that names the
    # contract phase rather than an error pointing at a plain deploy
    verify = run_invoke("db.verify", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir",
                        str(tree), "--json", env=state)
    assert verify.returncode == 2, verify.stdout + verify.stderr
    codes = [f["code"] for f in json.loads(verify.stdout)["findings"]]
    assert codes == ["CONTRACT_PENDING"]


def test_contract_is_refused_while_an_older_release_is_alive(fresh_dsn, tree, state):
    assert run_invoke("deploy", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree),
                      "--phase", "expand", env=state).returncode == 0
    register(fresh_dsn, "old-1", 3)
    register(fresh_dsn, "new-1", 5)
    register(fresh_dsn, "gone-1", 2, seconds_ago=3600)  # stopped beating an hour ago
    refused = run_invoke("deploy", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree),
                         "--phase", "contract", env=state)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    message = " ".join(refused.stderr.split())
    assert "0004_price_positive" in message and "old-1 on node-a runs release 0003" in message
    assert "gone-1" not in message and "new-1" not in message
    assert "`invoke deploy --env dev --phase contract`" in message
    assert [v for v, _ in history(fresh_dsn)] == [1, 2, 3, 5]  # nothing ran
    rows = fetch(fresh_dsn, "SELECT result, exit_code FROM shipshape.deployments ORDER BY id")
    assert rows[-1] == ("failed at contract", 3)

    # The old replica stops (deregisters): the contract phase runs, and what follows it.
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("DELETE FROM shipshape.app_instances WHERE instance = 'old-1'")
    done = run_invoke("deploy", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree),
                      "--phase", "contract", "--json", env=state)
    assert done.returncode == 0, done.stdout + done.stderr
    assert history(fresh_dsn)[3:] == [(4, "contract"), (5, "expand")]
    gates = {g["name"]: g for g in json.loads(done.stdout)["gates"]}
    assert gates["contract"]["detail"].startswith("1 contract migration(s) applied (1 live")
    assert gates["migrate"]["status"] == "skipped"


def test_all_runs_expand_then_contract_in_one_deploy(fresh_dsn, tree, make_target, cache_dir):
    target = make_target(fresh_dsn, "local")
    result = commands.deploy(target, tree)  # local's default phase is all
    assert result.phase == "all"
    assert [g.name for g in result.gates if g.status == "ok"] == [
        "preflight", "lock", "migrate", "seed", "verify", "contract", "record"]
    assert history(fresh_dsn)[-2:] == [(4, "contract"), (5, "expand")]
    assert (result.from_version, result.to_version) == (None, 5)


def test_all_refuses_the_contract_part_when_an_old_release_runs(fresh_dsn, tree, make_target,
                                                                cache_dir):
    target = make_target(fresh_dsn, "local")
    commands.deploy(target, tree, phase="expand")
    register(fresh_dsn, "laptop", 3)
    with pytest.raises(Refused):
        commands.deploy(target, tree)
    assert [v for v, _ in history(fresh_dsn)] == [1, 2, 3, 5]


def test_a_bad_phase_is_bad_input(fresh_dsn, tree, state):
    result = run_invoke("deploy", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree),
                        "--phase", "sideways", env=state)
    assert result.returncode == 5
    assert "--phase 'sideways'" in result.stderr and "--phase expand" in result.stderr
    assert fetch(fresh_dsn, "SELECT to_regclass('shipshape.history')") == [(None,)]


def history_before_phases(dsn: str) -> None:
    """shipshape.history as it was before the phase and lock_ok columns."""
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE SCHEMA shipshape")
        conn.execute("CREATE TABLE shipshape.history (version integer PRIMARY KEY, name text "
                     "NOT NULL, checksum text NOT NULL, source_checksum text NOT NULL, "
                     "applied_at timestamptz NOT NULL DEFAULT now(), duration_ms integer NOT "
                     "NULL DEFAULT 0, applied_by text NOT NULL, success boolean NOT NULL)")


def test_a_history_from_before_phases_gains_the_column(fresh_dsn, tree, make_target, cache_dir):
    history_before_phases(fresh_dsn)
    commands.deploy(make_target(fresh_dsn, "local"), tree, phase="expand")
    assert history(fresh_dsn) == [(1, "expand"), (2, "expand"), (3, "expand"), (5, "expand")]


def test_its_rows_read_as_expand_accepting_nothing(fresh_dsn, make_target):
    """Read before bootstrap adds the columns: expand, no lock finding accepted; and
    bootstrap adds both columns with those very values."""
    history_before_phases(fresh_dsn)
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("INSERT INTO shipshape.history (version, name, checksum, source_checksum, "
                     "applied_by, success) VALUES (1, '0001_items', 'c', 's', 'old', true)")
    with db.connect(make_target(fresh_dsn)) as conn:
        [old] = engine_history.read_history(conn).values()
        assert set(old) == set(engine_history.COLUMNS)
        assert (old["name"], old["phase"], old["lock_ok"]) == ("0001_items", "expand", "")
        engine_history.ensure_history(conn)
        [upgraded] = engine_history.read_history(conn).values()
    assert upgraded == old


def test_dry_run_puts_the_contract_migrations_after_verify(fresh_dsn, tree, state):
    result = run_invoke("deploy", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree),
                        "--phase", "all", "--dry-run", env=state)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.index("==== verify") < text.index("==== contract") < text.index("items_price_check")
    expand = run_invoke("deploy", "--env", "dev", "--dsn", fresh_dsn, "--sql-dir", str(tree),
                        "--dry-run", env=state)
    assert "items_price_check" not in expand.stdout
    assert "1 migration(s) left for `invoke deploy --env dev --phase contract`" in expand.stdout


def test_seeds_are_rehearsed_on_the_schema_the_seed_gate_meets(tree, fresh_dsn, state):
    """The seed gate runs before the contract migrations. A seed that fits only the schema
    after them (here a column that a contract migration renames) used to pass the
    rehearsal, and the deploy then migrated and failed at the seed gate (incident 1)."""
    write_migration(tree, "0006_price_renamed",
                    "-- shipshape:phase contract\nALTER TABLE items RENAME COLUMN price TO cost;\n",
                    "ALTER TABLE items RENAME COLUMN cost TO price;\n")
    seed = tree / "seeds" / "items.yaml"
    seed.write_text(seed.read_text().replace("price", "cost"))
    for dry_run in (["--dry-run"], []):
        result = run_invoke("deploy", *dry_run, "--env", "dev", "--phase", "expand", "--dsn",
                            fresh_dsn, "--sql-dir", str(tree), env=state)
        assert result.returncode == 5, result.stderr
        assert "table items has no column 'cost' in the schema the migrations produce" \
            in result.stderr
        assert fetch(fresh_dsn, "SELECT to_regclass('shipshape.history')") == [(None,)]
