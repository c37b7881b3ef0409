"""Seed files: validation messages (file + field), overrides, env and set filtering.

Every test writes its own small seed files; the shipped sql/seeds/ are not used.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shipshape.engine import seeds
from shipshape.engine.seeds import declarations
from shipshape.errors import ConfigError
from shipshape.settings import Environment

LOCAL = Environment(name="local")
PROD = Environment(name="prod", seed_sets=("reference",))

GOOD = textwrap.dedent("""\
    table: ai_models
    key: [modelKey]
    set: reference
    rows:
      - modelKey: flux-dev-base
        appId: avatar-creator
        creditCost: 8
        enabled: true
        capabilities: {modelId: black-forest-labs/FLUX.1-dev, width: 512}
      - modelKey: flux-schnell-fast
        appId: avatar-creator
        creditCost: 6
        enabled: true
    """)


def write(sql_dir: Path, name: str, text: str) -> Path:
    path = sql_dir / "seeds" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load_error(sql_dir: Path, env: Environment = LOCAL) -> str:
    with pytest.raises(ConfigError) as info:
        seeds.load(sql_dir, env)
    assert info.value.exit_code == 5
    return str(info.value)


@pytest.fixture
def sql_dir(tmp_path):
    return tmp_path / "sql"


# --- valid files -------------------------------------------------------------------------

def test_good_file_loads_as_declared(sql_dir):
    path = write(sql_dir, "ai_models.yaml", GOOD)
    [seed] = seeds.load(sql_dir, LOCAL)
    assert seed.path == path
    assert (seed.table, seed.key, seed.set) == ("ai_models", ("modelKey",), "reference")
    assert seed.rows[0] == {
        "modelKey": "flux-dev-base", "appId": "avatar-creator", "creditCost": 8,
        "enabled": True,
        "capabilities": {"modelId": "black-forest-labs/FLUX.1-dev", "width": 512},
    }
    assert type(seed.rows[0]["capabilities"]) is dict  # plain values, no loader types
    assert seed.key_of(seed.rows[1]) == ("flux-schnell-fast",)


def test_missing_seeds_directory_means_no_seeds(sql_dir):
    assert seeds.load(sql_dir, LOCAL) == []


def test_files_sorted_by_name_and_other_files_ignored(sql_dir):
    write(sql_dir, "20_b.yaml", "table: b\nkey: [k]\nset: reference\nrows: [{k: 1}]\n")
    write(sql_dir, "10_a.yml", "table: a\nkey: [k]\nset: reference\nrows: [{k: 1}]\n")
    write(sql_dir, "README.md", "not a seed")
    write(sql_dir, ".hidden.yaml", "garbage: [")
    assert [s.table for s in seeds.load(sql_dir, LOCAL)] == ["a", "b"]


def test_rows_may_have_different_columns(sql_dir):
    write(sql_dir, "t.yaml", """\
        table: t
        key: [k]
        set: reference
        rows:
          - {k: a, x: 1}
          - {k: b, y: 2}
          - {k: c}
        """)
    [seed] = seeds.load(sql_dir, LOCAL)
    assert [sorted(r) for r in seed.rows] == [["k", "x"], ["k", "y"], ["k"]]


def test_composite_key(sql_dir):
    write(sql_dir, "t.yaml", """\
        table: app.t
        key: [appId, slug]
        set: reference
        rows:
          - {appId: a, slug: one, n: 1}
          - {appId: b, slug: one, n: 2}
        """)
    [seed] = seeds.load(sql_dir, LOCAL)
    assert seed.key == ("appId", "slug")
    assert seeds.describe_key(seed.key_of(seed.rows[1])) == "(b, one)"


# --- overrides -----------------------------------------------------------------------------

OVERRIDDEN = GOOD + textwrap.dedent("""\
    overrides:
      prod:
        - {modelKey: flux-schnell-fast, enabled: false, note: off in prod}
      dev:
        - {modelKey: flux-dev-base, creditCost: 1}
    """)


def test_overrides_replace_listed_values_for_their_env_only(sql_dir):
    write(sql_dir, "ai_models.yaml", OVERRIDDEN)
    [prod] = seeds.load(sql_dir, PROD)
    assert prod.rows[1] == {"modelKey": "flux-schnell-fast", "appId": "avatar-creator",
                            "creditCost": 6, "enabled": False, "note": "off in prod"}
    assert prod.rows[0]["creditCost"] == 8  # the dev override does not leak into prod
    [dev] = seeds.load(sql_dir, Environment(name="dev"))
    assert dev.rows[0]["creditCost"] == 1 and dev.rows[1]["enabled"] is True
    [local] = seeds.load(sql_dir, LOCAL)
    assert local.rows == declarations.parse(sql_dir / "seeds" / "ai_models.yaml")[0].seed.rows


# --- env and set filtering -------------------------------------------------------------------

def test_set_and_envs_decide_which_files_apply(sql_dir):
    write(sql_dir, "a_reference.yaml", "table: a\nkey: [k]\nset: reference\nrows: [{k: 1}]\n")
    write(sql_dir, "b_demo.yaml", "table: b\nkey: [k]\nset: demo\nrows: [{k: 1}]\n")
    write(sql_dir, "c_dev_only.yaml",
          "table: c\nkey: [k]\nset: reference\nenvs: [local, dev]\nrows: [{k: 1}]\n")
    names = lambda env: [s.path.name for s in seeds.load(sql_dir, env)]  # noqa: E731
    assert names(LOCAL) == ["a_reference.yaml", "b_demo.yaml", "c_dev_only.yaml"]
    assert names(PROD) == ["a_reference.yaml"]
    assert names(Environment(name="staging", seed_sets=("reference", "demo"))) == [
        "a_reference.yaml", "b_demo.yaml"]
    assert names(Environment(name="dev", seed_sets=())) == []


def test_files_for_other_envs_are_validated_too(sql_dir):
    write(sql_dir, "demo.yaml", "table: b\nkey: [k]\nset: demo\nrows: [{x: 1}]\n")
    message = load_error(sql_dir, PROD)  # prod does not get the demo set, still an error
    assert "demo.yaml: rows[0]: missing key column 'k'" in message


def test_two_files_declaring_the_same_row_for_one_env(sql_dir):
    write(sql_dir, "a.yaml", "table: t\nkey: [k]\nset: reference\nrows: [{k: 1, v: a}]\n")
    write(sql_dir, "b.yaml", "table: t\nkey: [k]\nset: demo\nrows: [{k: 1, v: b}]\n")
    message = load_error(sql_dir, LOCAL)
    assert "b.yaml: rows[0]: key 1 of table t is also declared by" in message
    assert "a.yaml" in message
    assert len(seeds.load(sql_dir, PROD)) == 1  # in prod only one of them applies


# --- validation messages -----------------------------------------------------------------

def test_row_missing_key_column_names_file_and_row(sql_dir):
    path = write(sql_dir, "ai_models.yaml", GOOD + "  - {appId: avatar-creator, creditCost: 3}\n")
    message = load_error(sql_dir)
    assert f"{path}: rows[2]: missing key column 'modelKey'" in message
    assert "(line 14)" in message


def test_yaml_syntax_error_names_file_and_line(sql_dir):
    path = write(sql_dir, "broken.yaml", "table: t\nkey: [k\nset: reference\n")
    message = load_error(sql_dir)
    assert message.startswith(f"{path}:")
    assert "not valid YAML" in message
    line = int(message[len(str(path)) + 1:].split(":")[0])
    assert line in (2, 3, 4)


def test_duplicate_yaml_keys_are_an_error(sql_dir):
    path = write(sql_dir, "dup.yaml", """\
        table: t
        key: [k]
        set: reference
        rows:
          - k: a
            v: 1
            v: 2
        """)
    message = load_error(sql_dir)
    assert f"{path}:7: not valid YAML" in message and "duplicate key 'v'" in message


@pytest.mark.parametrize("text, expected", [
    ("", "expected a mapping with the fields table, key, set, rows, got nothing"),
    ("- a\n- b\n", "expected a mapping with the fields table, key, set, rows, got a list"),
])
def test_file_that_is_not_a_mapping(sql_dir, text, expected):
    path = write(sql_dir, "t.yaml", text)
    assert f"{path}: {expected}" in load_error(sql_dir)


@pytest.mark.parametrize("missing", ["table", "key", "set", "rows"])
def test_missing_required_field(sql_dir, missing):
    fields = {"table": "table: t", "key": "key: [k]", "set": "set: reference",
              "rows": "rows: [{k: 1}]"}
    del fields[missing]
    path = write(sql_dir, "t.yaml", "\n".join(fields.values()) + "\n")
    assert f"{path}: {missing}: missing required field" in load_error(sql_dir)


def test_unknown_top_level_field(sql_dir):
    path = write(sql_dir, "t.yaml", GOOD + "colums: [a]\n")
    message = load_error(sql_dir)
    assert f"{path}: colums: unknown field" in message
    assert "table, key, set, envs, initial, rows, overrides" in message


@pytest.mark.parametrize("key", ["modelKey", "[]", "[1]", "[a, a]", "{a: 1}"])
def test_key_must_be_a_non_empty_list_of_columns(sql_dir, key):
    path = write(sql_dir, "t.yaml", f"table: t\nkey: {key}\nset: reference\nrows: [{{a: 1}}]\n")
    message = load_error(sql_dir)
    assert f"{path}: key: " in message
    assert ("non-empty list of column names" in message) or ("lists a column twice" in message)


@pytest.mark.parametrize("value", ["[reference]", "1", "''", "null"])
def test_set_must_be_a_string(sql_dir, value):
    path = write(sql_dir, "t.yaml", f"table: t\nkey: [k]\nset: {value}\nrows: [{{k: 1}}]\n")
    assert f"{path}: set: must be a string naming a seed set" in load_error(sql_dir)


@pytest.mark.parametrize("table", ["''", "[t]", "5", "'a.'"])
def test_table_must_be_a_name(sql_dir, table):
    path = write(sql_dir, "t.yaml", f"table: {table}\nkey: [k]\nset: reference\nrows: [{{k: 1}}]\n")
    assert f"{path}: table: must be a table name" in load_error(sql_dir)


def test_envs_must_be_known(sql_dir):
    path = write(sql_dir, "t.yaml", GOOD + "envs: [dev, production]\n")
    message = load_error(sql_dir)
    assert f"{path}: envs[1]: unknown env 'production'; known envs: local, dev, staging, prod" \
        in message


def test_envs_must_be_a_list(sql_dir):
    path = write(sql_dir, "t.yaml", GOOD + "envs: prod\n")
    assert f"{path}: envs: must be a non-empty list of envs" in load_error(sql_dir)


@pytest.mark.parametrize("rows, expected", [
    ("[]", "rows: must be a non-empty list of mappings"),
    ("{k: 1}", "rows: must be a non-empty list of mappings"),
    ("[[1, 2]]", "rows[0]: must be a mapping of column to value, got a list"),
    ("[{k: 1}, {k: 2}, {k: 1}]", "rows[2]: duplicate key 1, also rows[0]"),
    ("[{k: null}]", "rows[0].k: a key column needs a plain value, got NULL"),
    ("[{k: {a: 1}}]", "rows[0].k: a key column needs a plain value"),
    ("[{k: 1, 5: x}]", "rows[0]: 5 is not a column name"),
    ("[{k: 1, '': x}]", "rows[0]: '' is not a column name"),
    ("[{k: 1, v: {when: 2024-01-01}}]", "rows[0].v: a jsonb value cannot hold date"),
    ("[{k: 1, v: {1: x}}]", "rows[0].v: jsonb object keys must be strings"),
    ("[{k: 1, v: !!set {a}}]", "rows[0].v: unsupported value of type set"),
])
def test_row_problems(sql_dir, rows, expected):
    path = write(sql_dir, "t.yaml", f"table: t\nkey: [k]\nset: reference\nrows: {rows}\n")
    assert f"{path}: {expected}" in load_error(sql_dir)


@pytest.mark.parametrize("overrides, expected", [
    ("{prod: [{modelKey: flux-dev-typo, enabled: false}]}",
     "overrides.prod[0]: matches no row: no row has key flux-dev-typo"),
    ("{production: [{modelKey: flux-dev-base, enabled: false}]}",
     "overrides.production: unknown env; known envs: local, dev, staging, prod"),
    ("{prod: [{enabled: false}]}", "overrides.prod[0]: missing key column 'modelKey'"),
    ("{prod: [{modelKey: flux-dev-base}]}", "overrides.prod[0]: replaces no value"),
    ("{prod: {modelKey: flux-dev-base}}", "overrides.prod: must be a non-empty list"),
    ("[prod]", "overrides: must be a mapping of env name to a list of rows, got a list"),
    ("{prod: [{modelKey: flux-dev-base, enabled: false}, "
     "{modelKey: flux-dev-base, creditCost: 1}]}",
     "overrides.prod[1]: overrides flux-dev-base again, also overrides.prod[0]"),
])
def test_override_problems(sql_dir, overrides, expected):
    path = write(sql_dir, "ai_models.yaml", GOOD + f"overrides: {overrides}\n")
    assert f"{path}: {expected}" in load_error(sql_dir)


def test_override_for_an_env_the_file_does_not_apply_to(sql_dir):
    path = write(sql_dir, "t.yaml", """\
        table: t
        key: [k]
        set: reference
        envs: [local, dev]
        rows: [{k: 1, v: 1}]
        overrides:
          prod: [{k: 1, v: 2}]
        """)
    assert f"{path}: overrides.prod: the file does not apply to prod (envs: local, dev)" \
        in load_error(sql_dir)


def test_all_problems_are_reported_at_once(sql_dir):
    a = write(sql_dir, "a.yaml", "table: t\nkey: [k]\nset: reference\nrows: [{x: 1}]\nextra: 1\n")
    b = write(sql_dir, "b.yaml", "table: t\nkey: k\nset: reference\nrows: [{k: 1}]\n")
    with pytest.raises(ConfigError) as info:
        seeds.load(sql_dir, LOCAL)
    assert "The seed files have 3 problems" in info.value.message
    assert sorted(info.value.details) == sorted([
        f"{a}: extra: unknown field; the fields are table, key, set, envs, initial, rows, overrides",
        f"{a}: rows[0]: missing key column 'k' (line 4)",
        f"{b}: key: must be a non-empty list of column names, e.g. [modelKey], got 'k'",
    ])


# --- messages of results ---------------------------------------------------------------------

def seed(rows=({"k": "a"}, {"k": "b"}, {"k": "c"}, {"k": "d"})):
    return seeds.Seed(Path("sql/seeds/t.yaml"), "ai_models", ("k",), "reference", tuple(rows))


def test_check_summaries():
    s = seed()
    assert seeds.SeedCheck(s, 4, ok=4).summary() == \
        "ai_models: all 4 declared rows present and equal"
    assert seeds.SeedCheck(s, 4, missing=[("a",), ("b",), ("c",), ("d",)]).summary() == \
        "ai_models: 0 of 4 declared rows present (missing a, b, c, d)"
    assert seeds.SeedCheck(s, 4, ok=3, differing=[(("a",), "enabled", True, False)]).summary() == \
        "ai_models: 3 of 4 rows equal; a: enabled is false, expected true"
    mixed = seeds.SeedCheck(s, 4, ok=2, missing=[("b",)],
                            differing=[(("a",), "name", "x", None), (("a",), "n", 1, 2)])
    assert mixed.summary() == \
        "ai_models: 2 of 4 rows equal; missing b; a: name is NULL, expected 'x', n is 2, expected 1"
    assert not mixed.healthy
    err = seeds.SeedCheck(s, 4, error="table ai_models does not exist")
    assert err.summary() == "ai_models: table ai_models does not exist" and not err.healthy


# --- initial data -------------------------------------------------------------------------

USERS = """\
    table: users
    key: [email]
    set: demo
    initial: [creditBalance]
    rows:
      - {email: demo@example.test, name: Demo, creditBalance: 1000}
    """


def test_initial_columns_load_and_are_not_reference_data(sql_dir):
    write(sql_dir, "users.yaml", USERS)
    (seed,) = seeds.load(sql_dir, LOCAL)
    assert seed.initial == ("creditBalance",)
    assert seed.reference(["email", "name", "creditBalance"]) == ["name"]


def test_the_shipped_demo_users_credit_balance_is_initial_and_models_are_reference():
    from tests.conftest import ROOT

    loaded = {s.table: s for s in seeds.load(ROOT / "sql", LOCAL)}
    assert loaded["users"].initial == ("creditBalance",)
    models = loaded["ai_models"]
    assert models.initial == ()
    assert {"enabled", "creditCost"} <= set(models.reference(models.rows[0]))


@pytest.mark.parametrize("initial, message", [
    ("creditBalance", "initial: must be a non-empty list of column names"),
    ("[]", "initial: must be a non-empty list of column names"),
    ("[email]", "initial: 'email' is a key column"),
    ("[credits]", "initial: 'credits' is in no row"),
    ("[creditBalance, creditBalance]", "initial: lists a column twice"),
])
def test_bad_initial_lists_are_named(sql_dir, initial, message):
    path = write(sql_dir, "users.yaml", USERS.replace("[creditBalance]", initial))
    error = load_error(sql_dir)
    assert f"{path}: {message}" in error
