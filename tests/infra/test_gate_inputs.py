"""The gate's inputs are the seed rows' values, not only their keys: a changed value that
a deploy would apply (an AI model switched off, a new credit cost, a nested capability)
must change the gate's checksums, so Pulumi re-runs the gate. A comment must not.
"""

from __future__ import annotations

import pytest

from shipshape.pulumi_gate import gate

SEED = "ai_models.yaml"
FIRST_MODEL = "  - modelKey: avatar-creator:flux-dev-base\n"


@pytest.fixture
def env(make_target):
    return make_target("postgresql://unused", "dev").env


def edit(tree, old: str, new: str, name: str = SEED) -> None:
    path = tree / "seeds" / name
    text = path.read_text()
    assert text.count(old) >= 1, old
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(("old", "new"), [
    ("    enabled: true\n", "    enabled: false\n"),        # incident 1: a model disabled
    ("    creditCost: 8\n", "    creditCost: 9\n"),
    ("      numInferenceSteps: 28\n", "      numInferenceSteps: 20\n"),  # nested, jsonb
    ("    description: High-quality text-to-image avatar generation\n", ""),  # a column gone
], ids=["enabled", "creditCost", "nested-capability", "column-removed"])
def test_a_seed_value_change_changes_the_gate_inputs(env, sql_tree, old, new):
    before = gate.checksums(env, sql_tree)
    edit(sql_tree, old, new)
    after = gate.checksums(env, sql_tree)
    assert after["seeds"][SEED] != before["seeds"][SEED]
    assert {k: v for k, v in after["seeds"].items() if k != SEED} == \
        {k: v for k, v in before["seeds"].items() if k != SEED}
    assert after["migrations"] == before["migrations"] and after["checks"] == before["checks"]
    olds = {"env": env.name, "checksums": before, "database_id": "db-1", "app_role": "app"}
    assert gate.provider_diff(olds, {**olds, "checksums": after}) == ["checksums"]


def test_a_seed_set_table_or_key_change_changes_the_gate_inputs(env, sql_tree):
    before = gate.checksums(env, sql_tree)["seeds"]["demo_users.yaml"]
    edit(sql_tree, "name: Demo User", "name: Demo User (renamed)", "demo_users.yaml")
    renamed = gate.checksums(env, sql_tree)["seeds"]["demo_users.yaml"]
    edit(sql_tree, "key: [email]", "key: [email, name]", "demo_users.yaml")
    rekeyed = gate.checksums(env, sql_tree)["seeds"]["demo_users.yaml"]
    assert len({before, renamed, rekeyed}) == 3


def test_a_comment_or_the_order_of_keys_is_not_an_input(env, sql_tree):
    before = gate.checksums(env, sql_tree)
    edit(sql_tree, FIRST_MODEL, "  # the cheapest model\n" + FIRST_MODEL)
    edit(sql_tree, "    appId: avatar-creator\n    modelId: flux-dev-base\n",
         "    modelId: flux-dev-base\n    appId: avatar-creator\n")
    assert gate.checksums(env, sql_tree) == before


def test_the_env_s_seed_rows_are_the_input(make_target, sql_tree):
    """demo_users.yaml applies in dev only: its rows are dev's input, not staging's."""
    dev = gate.checksums(make_target("postgresql://unused", "dev").env, sql_tree)
    staging = gate.checksums(make_target("postgresql://unused", "staging").env, sql_tree)
    assert "demo_users.yaml" in dev["seeds"]
    assert dev["seeds"].get("demo_users.yaml") != staging["seeds"].get("demo_users.yaml")


def test_a_changed_data_check_changes_the_gate_inputs(env, sql_tree):
    before = gate.checksums(env, sql_tree)
    path = min((sql_tree / "checks").glob("*.sql.j2"))
    path.write_text(path.read_text().rstrip() + " AND false\n")
    after = gate.checksums(env, sql_tree)
    assert after["checks"][path.name.removesuffix(".sql.j2")] != \
        before["checks"][path.name.removesuffix(".sql.j2")]
    assert after["seeds"] == before["seeds"] and after["migrations"] == before["migrations"]
