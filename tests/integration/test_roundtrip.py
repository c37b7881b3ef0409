"""Every shipped migration's rollback exactly inverts it: up, down, up leaves an identical
catalog — on the 127.0.0.1:5432 server and on the embedded one, in a plain and in the
prod rendering (CONCURRENTLY indexes, no-transaction migrations)."""

from __future__ import annotations

import pytest

from shipshape import db
from shipshape.engine import catalog, history, migrations
from tests.conftest import ROOT, server_major
from tests.treeutil import skip_forward_only


def test_the_embedded_server_is_the_major_local_and_the_stacks_run(embedded_admin_dsn):
    """What makes "both servers" mean two majors: the system one is the machine's own (15
    here and in CI), the embedded one the major `make up` runs and the stacks pin."""
    from infra.config import POSTGRES_MAJOR

    assert server_major(embedded_admin_dsn) == POSTGRES_MAJOR


def snap(conn):
    return catalog.snapshot(conn)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_migration_round_trips(server_dsn, make_target, env):
    target = make_target(server_dsn, env, allow_destructive="true")
    loaded = migrations.load(ROOT / "sql", target.env)
    with db.connect(target) as conn:
        history.ensure_history(conn)
        before = snap(conn)
        for migration in loaded:
            migrations.apply(conn, target.env, migration, applied_by="test")
            after = snap(conn)
            if skip_forward_only(migration):
                before = after
                continue
            migrations.rollback_one(conn, target.env, migration)
            assert catalog.diff(before, snap(conn)) == [], f"rollback of {migration.name} is not exact"
            migrations.apply(conn, target.env, migration, applied_by="test")
            assert catalog.diff(after, snap(conn)) == [], f"{migration.name} differs when re-applied"
            before = after
        recorded = history.read_history(conn)
    assert sorted(recorded) == [m.version for m in loaded]


def test_full_rollback_to_zero_leaves_an_empty_schema(server_dsn, make_target):
    target = make_target(server_dsn, "dev")
    loaded = migrations.load(ROOT / "sql", target.env)
    with db.connect(target) as conn:
        empty = snap(conn)
        migrations.migrate(conn, target.env, loaded)
        done = migrations.rollback(conn, target.env, loaded, 0)
        assert [m.version for m in done] == sorted((m.version for m in loaded), reverse=True)
        assert catalog.diff(empty, snap(conn)) == []
        assert history.read_history(conn) == {}
