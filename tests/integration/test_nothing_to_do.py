"""No work when there is nothing to do: with every migration applied, db.status,
db.migrate and a second deploy read the history and the files' checksums and render
nothing. An unchanged template that renders differently under changed settings counts as
applied; verify says so (a warning) and compares the schema as usual."""

from __future__ import annotations

import psycopg
import pytest

from shipshape import commands
from shipshape.engine.render import Renderer
from shipshape.errors import Refused
from shipshape.ops import pipeline
from tests.treeutil import small_tree, write_migration

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
