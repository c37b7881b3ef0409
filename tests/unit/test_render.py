"""Jinja rendering: StrictUndefined, file:line in errors, env-specific SQL."""

import pytest

from shipshape.engine.render import Renderer, directives
from shipshape.errors import ConfigError
from shipshape.settings import load_environment


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "migrations").mkdir()
    return tmp_path


def render(tree, text, env="local", name="t.sql.j2"):
    (tree / name).write_text(text)
    return Renderer(tree, load_environment(env, config_dir=tree)).render(name)


def test_undefined_setting_names_file_and_line(tree):
    with pytest.raises(ConfigError) as caught:
        render(tree, "SELECT 1;\nSELECT 2;\nGRANT SELECT ON t TO {{ env.app_rol }};\n")
    assert caught.value.exit_code == 5
    assert f"{tree / 't.sql.j2'}:3" in str(caught.value)
    assert "app_rol" in str(caught.value)


def test_a_bad_argument_to_a_macro_names_the_call_not_the_macro(tree):
    """The misspelt setting fails inside shipshape's macros.sql.j2; the line to fix is the
    call in the migration."""
    with pytest.raises(ConfigError) as caught:
        render(tree, "SELECT 1;\n\n{{ create_index('i', 't', env.colums) }}\n")
    assert f"{tree / 't.sql.j2'}:3: template error" in str(caught.value)
    assert "macros.sql.j2" not in str(caught.value)


def test_an_error_of_python_in_a_template_is_bad_input_not_a_traceback(tree):
    with pytest.raises(ConfigError) as caught:
        render(tree, "SELECT 1;\nSELECT {{ 1 // 0 }};\n")
    assert caught.value.exit_code == 5
    assert f"{tree / 't.sql.j2'}:2: template error" in str(caught.value)


def test_syntax_error_names_file_and_line(tree):
    with pytest.raises(ConfigError) as caught:
        render(tree, "SELECT 1;\n{% if env.concurrent_indexes %}\nSELECT 2;\n")
    assert f"{tree / 't.sql.j2'}:" in str(caught.value)
    assert "syntax error" in str(caught.value)


def test_index_is_concurrent_only_in_prod(tree):
    text = "{{ transaction_directive() }}\n{{ create_index('t_a_idx', 't', ['a', 'userId']) }}\n"
    prod = render(tree, text, "prod")
    dev = render(tree, text, "dev")
    assert 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "t_a_idx" ON "t" ("a", "userId");' in prod
    assert directives(prod) == {"no-transaction"}
    assert "CONCURRENTLY" not in dev and 'CREATE INDEX IF NOT EXISTS "t_a_idx"' in dev
    assert directives(dev) == set()


def test_grants_go_to_the_envs_app_role(tree):
    (tree / "Pulumi.dev.yaml").write_text("config:\n  shipshape:app_role: dev_app\n")
    out = render(tree, "{{ grant_app('avatars') }}", "dev")
    assert out == 'GRANT SELECT, INSERT, UPDATE, DELETE ON "avatars" TO "dev_app";'


def test_unknown_directive_is_an_error(tree):
    with pytest.raises(ConfigError, match="no-transactoin"):
        directives(render(tree, "-- shipshape:no-transactoin\nSELECT 1;"))


def test_literal_filter_quotes_safely(tree):
    assert render(tree, "{{ \"it's\" | literal }}") == "'it''s'"
