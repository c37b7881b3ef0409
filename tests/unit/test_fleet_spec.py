"""The fleet file and the plan made from it: validation with file:line, shards, waves."""

from __future__ import annotations

import textwrap

import pytest

from shipshape.errors import ConfigError
from shipshape.ops import fleets
from shipshape.ops.fleets import plan, spec


def write(tmp_path, text: str, name: str = "tenants.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def problems(path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        spec.load(path)
    assert caught.value.exit_code == 5
    return caught.value.details


GOOD = """
    fleet: tenants
    env: prod
    sql_dir: ../sql
    settings: {lock_timeout: 2s, allow_destructive: false}
    parallel: 4
    max_failures: 3
    canary: {names: [b], labels: {tier: canary}}
    waves:
      - {name: eu, labels: {region: [eu, uk]}}
      - {name: next, count: 2}
    databases:
      - {name: a, dsn_env: TENANT_A_URL, labels: {region: us}}
      - {name: b, dsn: "postgresql://deploy@db-b/tenant_b", labels: {region: eu}}
      - {name: c, dsn_env: C_URL, labels: {region: uk, tier: canary}}
      - {name: d, dsn_env: D_URL, labels: {region: eu}}
      - {name: e, dsn_env: E_URL}
      - {name: f, dsn_env: F_URL}
      - {name: g, dsn_env: G_URL}
"""


def test_a_good_file_and_its_waves(tmp_path):
    fleet = spec.load(write(tmp_path, GOOD))
    assert (fleet.name, fleet.env, fleet.parallel, fleet.max_failures) == ("tenants", "prod", 4, 3)
    assert fleet.sql_dir == tmp_path / "../sql"
    assert fleet.settings == {"lock_timeout": "2s", "allow_destructive": "false"}
    assert fleet.member("a").source == "$TENANT_A_URL"
    waves = plan.waves(fleet, fleet.members)
    assert [(w.name, [m.name for m in w.members], w.canary) for w in waves] == [
        ("canary", ["b", "c"], True),   # by name, or by label
        ("eu", ["d"], False),           # labels: any of the listed values
        ("next", ["a", "e"], False),    # the next two, in file order
        ("rest", ["f", "g"], False),
    ]


def test_the_default_canary_is_the_first_database_and_the_name_the_file_stem(tmp_path):
    fleet = spec.load(write(tmp_path, """
        env: dev
        databases:
          - {name: one, dsn: "dbname=one"}
          - {name: two, dsn: "dbname=two"}
    """, name="eu.fleet.yaml"))
    assert fleet.name == "eu"
    assert [(w.name, len(w.members)) for w in plan.waves(fleet, fleet.members)] == [
        ("canary", 1), ("rest", 1)]
    none = spec.load(write(tmp_path, """
        env: dev
        canary: {count: 0}
        databases: [{name: one, dsn: "dbname=one"}]
    """))
    assert [w.name for w in plan.waves(none, none.members)] == ["rest"]


def test_every_problem_is_named_with_its_line(tmp_path):
    path = write(tmp_path, """
        env: production
        parallel: 0
        colour: blue
        settings: {lock_timeot: 2s}
        canary: {names: [nobody], count: 2}
        waves:
          - {name: rest, count: 1}
        databases:
          - {name: a, dsn_env: A_URL}
          - {name: a, dsn_env: B_URL}
          - {name: "no spaces", dsn: "dbname=x"}
          - {name: c}
          - {name: d, dsn: "postgresql://u:hunter2-secret@h/db"}
          - {name: e, dsn_env: "not a var", labels: [x]}
    """)
    found = problems(path)
    text = "\n".join(found)
    expected = {
        1: "env: unknown env 'production'",
        2: "parallel: must be a whole number >= 1",
        3: "colour: unknown key",
        4: "settings.lock_timeot: unknown setting",
        5: "canary.names: no database is named 'nobody'",
        7: "'rest' is the name of a built-in wave",
        10: "duplicate name (first on line 9)",
        11: "'no spaces' is not a name",
        12: "give exactly one of `dsn` or `dsn_env`",
        13: "holds a password",
        14: "dsn_env: must be an environment variable's name",
    }
    for line, message in expected.items():
        assert any(p.startswith(f"{path}:{line}:") and message in p for p in found), (
            line, message, text)
    assert any(p.startswith(f"{path}:5:") and "not both" in p for p in found), text
    assert any(p.startswith(f"{path}:14:") and "labels" in p for p in found), text
    assert "hunter2-secret" not in text


def test_malformed_yaml_names_the_line(tmp_path):
    path = write(tmp_path, """
        env: dev
        databases:
          - {name: a, dsn_env: A_URL
          - {name: b, dsn_env: B_URL}
    """)
    found = problems(path)
    assert len(found) == 1 and f"{path}:4:" in found[0] and "not valid YAML" in found[0]
    duplicate = write(tmp_path, "env: dev\nenv: prod\ndatabases: []\n", name="dup.yaml")
    assert "duplicate key 'env' (first on line 1)" in problems(duplicate)[0]


def test_a_missing_file_and_a_missing_list(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        spec.load(tmp_path / "nope.yaml")
    found = problems(write(tmp_path, "env: dev\n"))
    assert found == [f"{tmp_path / 'tenants.yaml'}:1: databases: required: the list of databases"]


def test_an_unset_dsn_env_is_exit_5_naming_every_database_before_anything_runs(tmp_path):
    from tests.treeutil import small_tree

    small_tree(tmp_path / "sql")
    path = write(tmp_path, """
        env: dev
        sql_dir: sql
        databases:
          - {name: a, dsn_env: FLEET_TEST_A}
          - {name: b, dsn_env: FLEET_TEST_B}
          - {name: c, dsn: "dbname=c"}
    """)
    with pytest.raises(ConfigError) as caught:
        fleets.prepare(path, environ={"FLEET_TEST_A": "dbname=a"})
    assert caught.value.exit_code == 5
    assert "nothing was deployed" in caught.value.message
    assert caught.value.details == [(
        f"{path}:5: database b: the environment variable FLEET_TEST_B (its dsn_env) is not "
        f"set; nothing was deployed. Export it with the database's DSN and run the command "
        f"again.")]
    prepared = fleets.prepare(path, environ={"FLEET_TEST_A": "dbname=a",
                                             "FLEET_TEST_B": "dbname=b"})
    assert set(prepared.targets) == {"a", "b", "c"}
    assert prepared.run_id.startswith("tenants/dev/")


def test_a_fleet_may_name_a_stack_and_runs_with_its_profile_and_settings(tmp_path):
    """`env:` takes what --env takes: a profile, or a stack that has a Pulumi.<name>.yaml
    (here the repository's prod-k8s, profile prod)."""
    path = write(tmp_path, """
        env: prod-k8s
        databases: [{name: a, dsn: "dbname=a"}]
    """)
    prepared = fleets.prepare(path, environ={})
    assert prepared.env.name == "prod-k8s" and prepared.env.profile == "prod"
    assert not prepared.env.allow_destructive  # the prod profile's rule
    assert problems(write(tmp_path, "env: nowhere\ndatabases: [{name: a, dsn: dbname=a}]\n",
                          "bad.yaml")) == [
        f"{tmp_path / 'bad.yaml'}:1: env: unknown env 'nowhere'; one of "
        f"local, dev, staging, prod, prod-k8s"]


def test_fleet_settings_sit_below_environment_variables_and_set(tmp_path):
    fleet = spec.load(write(tmp_path, """
        env: dev
        settings: {lock_timeout: 2s, lock_retries: 7}
        databases: [{name: a, dsn: "dbname=a"}]
    """))
    from shipshape.ops.fleets.running import settings_for

    assert settings_for(fleet, {}, {}) == {"lock_timeout": "2s", "lock_retries": "7"}
    assert settings_for(fleet, {}, {"SHIPSHAPE_LOCK_TIMEOUT": "9s"}) == {"lock_retries": "7"}
    assert settings_for(fleet, {"lock_retries": "1"}, {}) == {"lock_timeout": "2s",
                                                              "lock_retries": "1"}
    with pytest.raises(ConfigError, match="Unknown setting"):
        settings_for(fleet, {"nope": "1"}, {})


def test_shards_split_a_fleet_exactly_and_stably():
    names = [f"tenant-{i:03d}" for i in range(200)]
    shares = [[n for n in names if plan.Shard(i, 4).takes(n)] for i in range(4)]
    assert sorted(n for share in shares for n in share) == names  # each exactly once
    assert all(20 < len(s) < 80 for s in shares)  # and roughly evenly
    # stable: the same name is in the same share whatever else is in the fleet
    assert [n for n in reversed(names) if plan.Shard(1, 4).takes(n)] == shares[1][::-1]
    assert plan.shard_of("tenant-007", 4) == plan.shard_of("tenant-007", 4)


@pytest.mark.parametrize("text", ["4/4", "-1/4", "1", "a/b", "1/0"])
def test_a_bad_shard_is_exit_5(text):
    with pytest.raises(ConfigError, match="expected i/N"):
        plan.parse_shard(text)
    assert plan.parse_shard("3/4") == plan.Shard(3, 4) and plan.parse_shard(None) is None
