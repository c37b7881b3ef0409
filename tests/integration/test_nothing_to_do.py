"""No work when there is nothing to do: with every migration applied, db.status,
db.migrate and a second deploy read the history and the files' checksums and render
nothing. An unchanged template that renders differently under changed settings counts as
applied; verify says so (a warning) and compares the schema as usual.

As a user runs them (an `invoke` process), such runs do not even import what renders,
parses or draws (jinja2, pglast, rich), nor the runbooks; a warm deploy connects once.
Told by what the process imported (`-X importtime`) and by counting connections, never
by timing."""

from __future__ import annotations

import psycopg
import pytest

from shipshape import commands
from shipshape.engine import shadow
from shipshape.engine.render import Renderer
from shipshape.errors import Refused
from shipshape.ops import pipeline
from tests.conftest import run_invoke
from tests.treeutil import small_tree, write_migration

# What a run with nothing to do must not import: the template engine, the SQL parser, the
# terminal renderer, the runbooks.
UNUSED = ("jinja2", "pglast", "rich", "shipshape.ops.runbooks")

NOTE = "COMMENT ON TABLE items IS 'read by {{ env.app_role }}';\n"


@pytest.fixture
def tree(tmp_path):
    root = small_tree(tmp_path / "sql")
    write_migration(root, "0003_note", NOTE, "COMMENT ON TABLE items IS NULL;\n")
    return root


@pytest.fixture
def renders(monkeypatch):
    """Every template Jinja renders (a cache hit renders none)."""
    seen = []
    real = Renderer.render
    monkeypatch.setattr(Renderer, "render",
                        lambda self, path, **kw: seen.append(str(path)) or real(self, path, **kw))
    return seen


def test_status_and_migrate_render_nothing_when_nothing_is_pending(
        tree, fresh_dsn, make_target, cache_dir, renders):
    target = make_target(fresh_dsn)
    assert [m.name for m in commands.migrate(target, tree).applied] == [
        "0001_items", "0002_item_price", "0003_note"]
    assert len(renders) == 3  # only what ran (its rollbacks were not needed)
    renders.clear()
    assert commands.migrate(target, tree).applied == []
    status = commands.status(target, tree)
    assert [e.state for e in status.migrations] == ["applied"] * 3
    assert renders == []


def test_a_second_deploy_renders_nothing(tree, fresh_dsn, make_target, cache_dir, renders):
    target = make_target(fresh_dsn)
    pipeline.deploy(target, tree)
    renders.clear()
    result = pipeline.deploy(target, tree)
    [migrate] = [g for g in result.gates if g.name == "migrate"]
    assert migrate.detail.startswith("nothing to apply")
    assert renders == []  # migrations and checks come from the render cache


def test_changed_settings_count_as_applied_and_verify_says_so(
        tree, fresh_dsn, make_target, cache_dir):
    commands.migrate(make_target(fresh_dsn), tree)
    other = make_target(fresh_dsn, app_role="reporting")
    assert [e.state for e in commands.status(other, tree).migrations] == ["applied"] * 3
    assert commands.migrate(other, tree).applied == []  # not refused, not re-run
    findings = commands.verify(other, tree).findings
    [warning] = [f for f in findings if f.code == "MIGRATION_RENDERED_OTHERWISE"]
    assert warning.severity == "warning" and warning.object == "migration 0003_note"
    assert "its template is unchanged" in warning.message.lower()
    assert not [f for f in commands.verify(make_target(fresh_dsn), tree).findings
                if f.code == "MIGRATION_RENDERED_OTHERWISE"]


def test_an_edited_template_is_still_refused(tree, fresh_dsn, make_target, cache_dir):
    target = make_target(fresh_dsn)
    commands.migrate(target, tree)
    path = tree / "migrations" / "0003_note" / "migrate.sql.j2"
    path.write_text(NOTE.replace("read by", "written by"))
    with pytest.raises(Refused, match="changed after they ran") as caught:
        commands.migrate(target, tree)
    assert caught.value.exit_code == 3 and str(path) in str(caught.value)
    assert [e.state for e in commands.status(target, tree).migrations][-1] == "checksum-mismatch"


def test_an_edit_that_renders_the_same_sql_is_no_change(tree, fresh_dsn, make_target, cache_dir):
    target = make_target(fresh_dsn)
    commands.migrate(target, tree)
    path = tree / "migrations" / "0003_note" / "migrate.sql.j2"
    path.write_text("{# a reviewer's note #}" + NOTE)
    assert [e.state for e in commands.status(target, tree).migrations] == ["applied"] * 3
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM shipshape.history").fetchone()[0] == 3


def imported(*args: str) -> set[str]:
    """The modules an `invoke ARGS` process imported (it must succeed)."""
    done = run_invoke(*args, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:")}


def loaded(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_a_no_op_process_imports_nothing_that_renders_parses_or_draws(
        tree, fresh_dsn, make_target, cache_dir):
    where = ("--env", "local", "--dsn", fresh_dsn, "--sql-dir", str(tree))
    first = imported("db.migrate", *where)  # applies all three: renders and parses them
    assert loaded(first, "jinja2") and loaded(first, "pglast")  # so the check can fail
    for task in ("db.migrate", "db.status"):
        modules = imported(task, *where)
        assert loaded(modules, "psycopg"), task  # it did read the history
        assert [p for p in UNUSED if loaded(modules, p)] == [], task


def test_a_warm_deploy_imports_no_parser_and_connects_once(
        tree, fresh_dsn, make_target, cache_dir, monkeypatch):
    pipeline.deploy(make_target(fresh_dsn), tree)  # the shadow and rehearsal caches filled
    modules = imported("deploy", "--env", "local", "--dsn", fresh_dsn, "--sql-dir", str(tree))
    assert [p for p in UNUSED if loaded(modules, p)] == []
    opened, swept = [], []
    real = psycopg.connect  # what db.connect and the shadow's admin connections call
    monkeypatch.setattr(psycopg, "connect", lambda *a, **kw: opened.append(a) or real(*a, **kw))
    sweep = shadow.remove_leftovers
    monkeypatch.setattr(shadow, "remove_leftovers",
                        lambda *a, **kw: swept.append(sweep(*a, **kw)) or swept[-1])
    result = pipeline.deploy(make_target(fresh_dsn), tree)
    assert [g.status for g in result.gates if g.name == "verify"] == ["ok"]
    assert len(swept) == 1  # one sweep for the whole deploy
    # The shadow's server version and its search for leftovers read through the deploy's
    # connection; only dropping a leftover (a killed build's, e.g. of a concurrent test
    # run on this server) takes a connection of its own.
    dropped = any(what.startswith("scratch database") for what in swept[0])
    assert len(opened) == 1 + dropped
