"""The render cache: a template is rendered once per source, settings and includes; a
damaged entry is ignored and rebuilt; loading a tree renders nothing by itself."""

from __future__ import annotations

import os

import pytest

from shipshape.engine import migrations, rendercache
from shipshape.engine.render import Renderer
from shipshape.errors import ConfigError
from shipshape.settings import load_environment
from tests.treeutil import write_migration

UP = "GRANT SELECT ON items TO {{ env.app_role }};\n"


@pytest.fixture
def tree(tmp_path, cache_dir):
    write_migration(tmp_path / "sql", "0001_grant", UP, "SELECT 1;\n")
    return tmp_path / "sql"


def load(tree, **settings):
    """The tree's migrations, and the list of templates Jinja actually rendered."""
    renderer = Renderer(tree, load_environment("local", overrides=settings, config_dir=tree))
    rendered = []
    real = renderer.render
    renderer.render = lambda path, **kw: rendered.append(os.path.basename(path)) or real(path, **kw)
    return migrations.load(tree, renderer.env, renderer), rendered, renderer


def entries(cache_dir):
    return sorted((cache_dir / "cache" / "render").glob("*.sql"))


def test_second_load_reads_the_cache_and_renders_nothing(tree, cache_dir):
    first, rendered, _ = load(tree)
    assert first[0].sql == "GRANT SELECT ON items TO avatar_app;\n"
    assert rendered == ["migrate.sql.j2"]
    again, rendered, renderer = load(tree)
    assert again[0].sql == first[0].sql and again[0].checksum == first[0].checksum
    assert rendered == []
    assert "jinja" not in vars(renderer)  # not even the Jinja environment was built


def test_loading_renders_nothing_until_the_sql_is_needed(tree, cache_dir):
    loaded, rendered, renderer = load(tree)
    assert [m.name for m in loaded] == ["0001_grant"]
    assert loaded[0].source_checksum == migrations.sha256(UP)
    assert rendered == [] and entries(cache_dir) == [] and "jinja" not in vars(renderer)


def test_a_changed_source_is_rendered_again(tree, cache_dir):
    assert load(tree)[0][0].sql
    (tree / "migrations" / "0001_grant" / "migrate.sql.j2").write_text(
        UP.replace("SELECT", "SELECT, INSERT"))
    loaded, rendered, _ = load(tree)
    assert loaded[0].sql == "GRANT SELECT, INSERT ON items TO avatar_app;\n"
    assert rendered == ["migrate.sql.j2"] and len(entries(cache_dir)) == 2


def test_changed_settings_render_again_and_the_old_entry_still_serves_the_old_settings(
        tree, cache_dir):
    assert load(tree)[0][0].sql
    loaded, rendered, _ = load(tree, app_role="reporting")
    assert loaded[0].sql == "GRANT SELECT ON items TO reporting;\n"
    assert rendered == ["migrate.sql.j2"]
    back, rendered, _ = load(tree)
    assert back[0].sql == "GRANT SELECT ON items TO avatar_app;\n" and rendered == []


def test_a_changed_include_outside_migrations_renders_again(tree, cache_dir):
    (tree / "macros").mkdir()
    (tree / "macros" / "grants.sql.j2").write_text("{% macro who() %}avatar_app{% endmacro %}")
    path = tree / "migrations" / "0001_grant" / "migrate.sql.j2"
    path.write_text('{% import "macros/grants.sql.j2" as g %}GRANT SELECT ON items TO {{ g.who() }};\n')
    assert load(tree)[0][0].sql.endswith("TO avatar_app;\n")
    (tree / "macros" / "grants.sql.j2").write_text("{% macro who() %}auditor{% endmacro %}")
    loaded, rendered, _ = load(tree)
    assert loaded[0].sql.endswith("TO auditor;\n") and rendered == ["migrate.sql.j2"]


@pytest.mark.parametrize("damage", [
    lambda path: path.write_text(path.read_text().replace("avatar_app", "intruder")),
    lambda path: path.write_text(path.read_text()[:20]),
    lambda path: path.write_bytes(b"\xff\xfe not text"),
    lambda path: path.write_text(""),
])
def test_a_damaged_entry_is_ignored_and_rebuilt(tree, cache_dir, damage):
    assert load(tree)[0][0].sql
    [entry] = entries(cache_dir)
    damage(entry)
    loaded, rendered, _ = load(tree)
    assert loaded[0].sql == "GRANT SELECT ON items TO avatar_app;\n"
    assert rendered == ["migrate.sql.j2"]
    assert entry.read_text().endswith("\nGRANT SELECT ON items TO avatar_app;\n")  # rebuilt
    assert load(tree)[1] == []  # and served from the cache again


def test_an_unreadable_entry_is_ignored(tree, cache_dir):
    assert load(tree)[0][0].sql
    [entry] = entries(cache_dir)
    entry.unlink()
    entry.mkdir()  # reading it fails (even as root), and so does replacing it
    for _ in range(2):
        loaded, rendered, _ = load(tree)
        assert loaded[0].sql == "GRANT SELECT ON items TO avatar_app;\n"
        assert rendered == ["migrate.sql.j2"]
    assert entry.is_dir() and not [p for p in entry.parent.iterdir() if p.name.startswith(".")]


def test_an_entry_under_another_key_is_never_served(tree, cache_dir):
    assert load(tree)[0][0].sql
    [entry] = entries(cache_dir)
    cache = rendercache.RenderCache(entry.parent)
    cache.put("f" * 64, "SELECT 'planted';\n")
    assert cache.get("f" * 64) == "SELECT 'planted';\n"
    loaded, _, _ = load(tree)
    assert loaded[0].sql == "GRANT SELECT ON items TO avatar_app;\n"


def test_a_state_folder_that_cannot_be_written_only_costs_a_render(tree, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state folder should be")
    monkeypatch.setenv("SHIPSHAPE_STATE_DIR", str(blocker))
    for _ in range(2):
        loaded, rendered, _ = load(tree)
        assert loaded[0].sql == "GRANT SELECT ON items TO avatar_app;\n"
        assert rendered == ["migrate.sql.j2"]


def test_template_errors_are_not_cached(tree, cache_dir):
    path = tree / "migrations" / "0001_grant" / "migrate.sql.j2"
    path.write_text("GRANT SELECT ON items TO {{ env.app_rol }};\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match=f"{path}:1"):
            _ = load(tree)[0][0].sql
    assert entries(cache_dir) == []


def test_a_template_reads_with_universal_newlines(tmp_path):
    """Discovery reads templates as bytes, for speed: CRLF and lone CR still read as the
    LF text they are, so the source checksum and the rendering do not depend on them."""
    for name, newline in (("0001_lf", "\n"), ("0002_crlf", "\r\n"), ("0003_cr", "\r")):
        directory = write_migration(tmp_path / "sql", name, "", "SELECT 1;\n")
        (directory / "migrate.sql.j2").write_bytes(
            newline.join(["SELECT 1;", "SELECT 2;", ""]).encode())
    lf, crlf, cr = migrations.discover(tmp_path / "sql")
    assert lf.text == crlf.text == cr.text == "SELECT 1;\nSELECT 2;\n"
    assert lf.directory == tmp_path / "sql" / "migrations" / "0001_lf"
