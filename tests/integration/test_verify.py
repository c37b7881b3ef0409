"""Verify and baseline against real PostgreSQL: findings from each source, the shadow
database and its cache, and adopting a hand-made database only after proof. The tests on
`server_dsn` run on both test servers (tests/conftest.py): every source of findings, on
each server's catalog."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from shipshape import db
from shipshape.engine import baseline, migrations, shadow, verify
from shipshape.errors import ConfigError, Refused
from shipshape.ops import pipeline
from shipshape.progress import Progress
from tests.conftest import ROOT, create_database, drop_database, dsn_for
from tests.treeutil import small_tree, write_migration


def run_verify(target, tree):
    with db.connect(target) as conn:
        return verify.verify(conn, target, tree)


def codes(findings):
    return sorted({f.code for f in findings})


@pytest.fixture
def tree(tmp_path):
    return small_tree(tmp_path / "sql")


def test_clean_after_deploy_then_each_source_reports(server_dsn, make_target, tree, cache_dir):
    target = make_target(server_dsn, "dev")
    pipeline.deploy(target, tree)
    assert run_verify(target, tree) == []
    write_migration(tree, "0003_note", "ALTER TABLE items ADD COLUMN note text;",
                    "-- shipshape:destructive\nALTER TABLE items DROP COLUMN note;")
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM items WHERE name = 'pear'")
        conn.execute("INSERT INTO items (name, price) VALUES ('rotten', -2)")
        conn.execute("ALTER TABLE items ALTER COLUMN name DROP NOT NULL")
    findings = run_verify(target, tree)
    assert codes(findings) == ["CHECK_FAILED", "DRIFT_CHANGED", "MIGRATION_PENDING", "SEED_MISSING"]
    by_code = {f.code: f for f in findings}
    assert by_code["MIGRATION_PENDING"].object == "migration 0003_note"
    assert "items.name" in by_code["DRIFT_CHANGED"].object
    assert "1 of 2" in by_code["SEED_MISSING"].message and "pear" in by_code["SEED_MISSING"].message
    assert "rotten" in by_code["CHECK_FAILED"].message and by_code["CHECK_FAILED"].fix == "correct the price"
    # verify never writes: the data it complained about is still there
    with psycopg.connect(server_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM items WHERE name = 'rotten'").fetchone()[0] == 1


def test_missing_table_and_unknown_history(server_dsn, make_target, tree, cache_dir):
    target = make_target(server_dsn, "dev")
    pipeline.deploy(target, tree)
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE items")
        conn.execute("INSERT INTO shipshape.history (version, name, checksum, source_checksum, applied_by, success) "
                     "VALUES (9, '0009_future', 'x', 'y', 'someone', true)")
    findings = run_verify(target, tree)
    assert "MIGRATION_UNKNOWN" in codes(findings)
    drift = [f for f in findings if f.code == "DRIFT_MISSING"]
    assert [f.object for f in drift] == ["table items"]  # its columns are folded into it
    assert {"SEED_TABLE_MISSING", "CHECK_ERROR"} <= set(codes(findings))


def test_warm_verify_reuses_the_cached_shadow(fresh_dsn, make_target, tree, cache_dir):
    target = make_target(fresh_dsn, "dev")
    pipeline.deploy(target, tree)
    cached = list((cache_dir / "cache").glob("shadow-*.json"))
    assert len(cached) == 1

    class Recorder(Progress):
        messages = []

        def info(self, message):
            self.messages.append(message)

    with db.connect(target) as conn:
        verify.verify(conn, target, tree, progress=Recorder())
    assert any("from cache" in m for m in Recorder.messages)
    write_migration(tree, "0003_note", "ALTER TABLE items ADD COLUMN note text;",
                    "-- shipshape:destructive\nALTER TABLE items DROP COLUMN note;")
    pipeline.deploy(target, tree)  # new checksums: a new shadow, a second cache entry
    assert len(list((cache_dir / "cache").glob("shadow-*.json"))) == 2


def test_threads_verifying_one_tree_build_its_shadow_once(fresh_dsn, make_target, tree,
                                                          cache_dir, monkeypatch):
    """A fleet verifies many databases of one tree at once: one shadow build, not one per
    thread (each is a CREATE and a DROP DATABASE)."""
    from concurrent.futures import ThreadPoolExecutor

    target = make_target(fresh_dsn, "dev")
    loaded = migrations.load(tree, target.env)
    builds = []
    real = shadow._build

    def counted(*args, **kwargs):
        builds.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(shadow, "_build", counted)
    with ThreadPoolExecutor(max_workers=6) as pool:
        snapshots = list(pool.map(lambda _: shadow.shadow_snapshot(target, loaded), range(6)))
    assert len(builds) == 1
    assert all(s == snapshots[0] for s in snapshots) and snapshots[0]["tables"]


def test_shadow_builds_a_tree_with_an_extension_the_embedded_server_lacks(fresh_dsn, make_target, tmp_path, cache_dir):
    with psycopg.connect(fresh_dsn) as conn:
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'uuid-ossp'").fetchone()
    if not available:
        pytest.skip("this server has no uuid-ossp")
    tree = tmp_path / "sql"
    write_migration(tree, "0001_ext", 'CREATE EXTENSION IF NOT EXISTS "uuid-ossp";\n'
                    "CREATE TABLE tokens (id uuid PRIMARY KEY DEFAULT uuid_generate_v4());\n",
                    '-- shipshape:destructive\nDROP TABLE tokens;\nDROP EXTENSION "uuid-ossp";\n')
    target = make_target(fresh_dsn, "dev")
    result = pipeline.deploy(target, tree)
    assert result.exit_code == 0 and result.findings == []


def test_shadow_falls_back_to_embedded_when_create_database_is_refused(admin_dsn, make_target, tmp_path, cache_dir):
    role = "ss_test_nocreatedb"
    name = create_database(admin_dsn)
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOCREATEDB").format(sql.Identifier(role)))
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(role)))
        with psycopg.connect(dsn_for(admin_dsn, name), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
        dsn = psycopg.conninfo.make_conninfo(dsn_for(admin_dsn, name), user=role)
        tree = small_tree(tmp_path / "sql")
        target = make_target(dsn, "dev")
        messages = []

        class Recorder(Progress):
            def info(self, message):
                messages.append(message)

        result = pipeline.deploy(target, tree, progress=Recorder())
        assert result.exit_code == 0 and result.findings == []
        assert any("embedded server" in m for m in messages)
    finally:
        drop_database(admin_dsn, name)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def hand_made(dsn, tree, env, upto):
    """Apply migrations 1..upto as someone with psql would: objects, but no history."""
    loaded = [m for m in migrations.load(tree, env) if m.version <= upto]
    with psycopg.connect(dsn, autocommit=True) as conn:
        for migration in loaded:
            for statement in migrations.split(migration.sql):
                conn.execute(statement)


def test_baseline_adopts_a_matching_hand_made_database(fresh_dsn, make_target, cache_dir):
    target = make_target(fresh_dsn, "dev")
    hand_made(fresh_dsn, ROOT / "sql", target.env, 5)
    loaded = migrations.load(ROOT / "sql", target.env)
    with db.connect(target) as conn:
        adopted = baseline.baseline(conn, target, loaded, 5)
    assert [m.version for m in adopted] == [1, 2, 3, 4, 5]
    result = pipeline.deploy(target, ROOT / "sql")  # deploy continues from 0006
    assert result.from_version == 5 and result.findings == []


def test_baseline_refuses_when_the_schema_differs_and_lists_why(fresh_dsn, make_target, cache_dir):
    target = make_target(fresh_dsn, "dev")
    hand_made(fresh_dsn, ROOT / "sql", target.env, 4)  # incident 3: the 18 columns never came
    loaded = migrations.load(ROOT / "sql", target.env)
    with db.connect(target) as conn:
        with pytest.raises(Refused) as caught:
            baseline.baseline(conn, target, loaded, 5)
    text = str(caught.value)
    assert caught.value.exit_code == 3
    assert "18 difference(s)" in text and "avatars.personaName" in text and "avatars.lastUsedAt" in text
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT to_regclass('shipshape.history')").fetchone()[0] is None
    with db.connect(target) as conn:
        with pytest.raises(ConfigError, match="no migration has version 0099"):
            baseline.baseline(conn, target, loaded, 99)
