"""Settings precedence, unknown envs, DSN resolution and redaction."""

import pytest

from shipshape.errors import ConfigError
from shipshape.secrets import redact, register_secret
from shipshape.settings import KNOWN_ENVS, load_environment, parse_duration, parse_overrides
from shipshape.targets import Target, resolve_target


def test_unknown_env_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_environment("production", config_dir=tmp_path)
    assert caught.value.exit_code == 5
    for name in KNOWN_ENVS:
        assert name in str(caught.value)


def test_precedence_defaults_stack_file_env_vars_flags(tmp_path):
    (tmp_path / "Pulumi.staging.yaml").write_text(
        "config:\n  shipshape:lock_timeout: 7s\n  shipshape:statement_timeout: 1min\n"
        "  shipshape:app_role: from_file\n  shipshape:db_password:\n    secure: AAAbase64\n")
    env = load_environment("staging", config_dir=tmp_path, environ={})
    assert (env.lock_timeout, env.statement_timeout, env.app_role) == ("7s", "1min", "from_file")
    assert env.allow_destructive is False  # built-in default for staging
    env = load_environment("staging", config_dir=tmp_path,
                           environ={"SHIPSHAPE_LOCK_TIMEOUT": "9s", "SHIPSHAPE_APP_ROLE": "from_env"})
    assert (env.lock_timeout, env.app_role) == ("9s", "from_env")
    env = load_environment("staging", config_dir=tmp_path,
                           environ={"SHIPSHAPE_LOCK_TIMEOUT": "9s"},
                           overrides={"lock_timeout": "11s"})
    assert env.lock_timeout == "11s"
    assert "db_password" not in env.extra  # secrets stay with Pulumi


def test_shipped_stack_files_are_read():
    prod = load_environment("prod")
    assert prod.concurrent_indexes and not prod.allow_destructive
    assert prod.seed_sets == ("reference",)
    assert load_environment("dev").seed_sets == ("reference", "demo")


@pytest.mark.parametrize("override,message", [
    ({"nonsense": "1"}, "Unknown setting 'nonsense'"),
    ({"lock_timeout": "soon"}, "invalid value 'soon'"),
    ({"allow_destructive": "perhaps"}, "invalid value 'perhaps'"),
    ({"lock_retries": "many"}, "invalid value 'many'"),
])
def test_bad_settings_are_config_errors(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_environment("dev", overrides=override, config_dir=tmp_path)


def test_bad_stack_file_names_the_file(tmp_path):
    (tmp_path / "Pulumi.dev.yaml").write_text("config: [unclosed\n")
    with pytest.raises(ConfigError, match="Pulumi.dev.yaml"):
        load_environment("dev", config_dir=tmp_path)


def test_parse_overrides():
    assert parse_overrides(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["oops"])


def test_durations():
    assert parse_duration("500ms") == 0.5
    assert parse_duration("3s") == 3
    assert parse_duration("15min") == 900
    assert parse_duration("0") == 0
    with pytest.raises(ValueError):
        parse_duration("3 parsecs")


def test_dsn_precedence_flag_then_database_url(tmp_path):
    env = load_environment("dev", config_dir=tmp_path)
    assert resolve_target(env, "postgresql://a@h/db", environ={"DATABASE_URL": "postgresql://b@h/db"}).source == "--dsn"
    target = resolve_target(env, None, environ={"DATABASE_URL": "postgresql://b@h/db"})
    assert (target.source, target.dsn) == ("DATABASE_URL", "postgresql://b@h/db")


def test_explicit_dsn_wins_for_local_too(tmp_path):
    env = load_environment("local", config_dir=tmp_path)
    assert resolve_target(env, "postgresql://a@h/db", environ={}).source == "--dsn"


def test_non_local_env_without_dsn_is_a_config_error(tmp_path):
    env = load_environment("prod", config_dir=tmp_path)
    with pytest.raises(ConfigError, match="No database for env prod"):
        resolve_target(env, None, environ={})


@pytest.mark.parametrize("text", [
    "postgresql://app:s3cr3t-pw@db.internal:5432/avatar",
    "postgres://app:s3cr3t-pw@db.internal/avatar?sslmode=require",
    "host=db.internal user=app password=s3cr3t-pw dbname=avatar",
    "host=db user=app password='s3cr3t-pw' dbname=avatar",
])
def test_redact_removes_passwords(text):
    assert "s3cr3t-pw" not in redact(text)
    assert "db" in redact(text)


def test_redact_removes_registered_secrets_anywhere():
    register_secret("hunter2-registered")
    assert redact("psql failed: password hunter2-registered rejected") == \
        "psql failed: password *** rejected"


def test_target_describe_is_redacted(tmp_path):
    env = load_environment("dev", config_dir=tmp_path)
    target = Target(env, "postgresql://app:topsecret99@db/avatar", "DATABASE_URL")
    assert "topsecret99" not in target.describe()
    assert "DATABASE_URL" in target.describe()


# --- free stack names: a stack file declares the profile whose rules it runs with ---------

def stack(directory, name: str, body: str) -> None:
    (directory / f"Pulumi.{name}.yaml").write_text("config:\n" + body)


def test_a_stack_file_gets_the_defaults_of_the_profile_it_declares(tmp_path):
    stack(tmp_path, "eu-prod", "  shipshape:profile: prod\n")
    # another stack's file of the same profile is never read for eu-prod
    stack(tmp_path, "prod", "  shipshape:lock_timeout: 9s\n  shipshape:allow_destructive: true\n")
    env = load_environment("eu-prod", config_dir=tmp_path, environ={})
    assert (env.name, env.profile) == ("eu-prod", "prod")
    assert env.is_prod and not env.is_local
    assert not env.allow_destructive and env.concurrent_indexes
    assert env.seed_sets == ("reference",)
    assert (env.lock_timeout, env.statement_timeout) == ("3s", "15min")
    assert "profile" not in env.extra
    assert env.context()["profile"] == "prod" and env.context()["name"] == "eu-prod"
    # and the same precedence as a profile's own stack: file < SHIPSHAPE_* < --set
    stack(tmp_path, "qa-eu", "  shipshape:profile: staging\n  shipshape:lock_timeout: 7s\n")
    qa = load_environment("qa-eu", config_dir=tmp_path, environ={"SHIPSHAPE_APP_ROLE": "qa_app"},
                          overrides={"statement_timeout": "1min"})
    assert (qa.profile, qa.allow_destructive, qa.is_prod) == ("staging", False, False)
    assert (qa.lock_timeout, qa.app_role, qa.statement_timeout) == ("7s", "qa_app", "1min")


def test_a_dev_stack_gets_dev_rules(tmp_path):
    stack(tmp_path, "alice-dev", "  shipshape:profile: dev\n")
    env = load_environment("alice-dev", config_dir=tmp_path, environ={})
    assert env.profile == "dev" and env.allow_destructive and env.seed_sets == ("reference", "demo")


def test_the_shipped_kubernetes_stack_file_is_an_env_of_the_prod_profile():
    env = load_environment("prod-k8s", environ={})
    assert (env.profile, env.allow_destructive, env.concurrent_indexes) == ("prod", False, True)
    assert env.lock_retries == 5 and env.extra["platform"] == "kubernetes"


def test_an_unknown_env_lists_the_stacks_and_prints_the_command_that_creates_one(tmp_path):
    stack(tmp_path, "eu-prod", "  shipshape:profile: prod\n")
    with pytest.raises(ConfigError) as caught:
        load_environment("us-prod", config_dir=tmp_path)
    message = str(caught.value)
    assert caught.value.exit_code == 5
    assert "Known environments: local, dev, staging, prod, eu-prod." in message
    command = message.split("`")[-2]
    assert command.startswith("printf ") and command.endswith("> Pulumi.us-prod.yaml")
    # the command it names fixes it
    import subprocess

    subprocess.run(["sh", "-c", command], cwd=tmp_path, check=True)
    assert load_environment("us-prod", config_dir=tmp_path, environ={}).profile == "prod"


@pytest.mark.parametrize("body,message", [
    ("  shipshape:lock_timeout: 2s\n", "does not say which profile it runs with"),
    ("  shipshape:profile: production\n", "shipshape:profile is 'production'"),
    ("  shipshape:profile: local\n", "`local` is the embedded server"),
])
def test_a_stack_file_without_a_usable_profile_is_exit_5_naming_the_file(tmp_path, body, message):
    stack(tmp_path, "qa", body)
    with pytest.raises(ConfigError) as caught:
        load_environment("qa", config_dir=tmp_path)
    assert caught.value.exit_code == 5
    assert message in str(caught.value) and "Pulumi.qa.yaml" in str(caught.value)
    assert "pulumi config set --stack qa shipshape:profile" in str(caught.value)


def test_seed_files_for_a_profile_apply_to_its_stacks(tmp_path):
    from shipshape.engine.seeds import declarations

    stack(tmp_path, "eu-prod", "  shipshape:profile: prod\n")
    seeds = tmp_path / "sql" / "seeds"
    seeds.mkdir(parents=True)
    (seeds / "plans.yaml").write_text(
        "table: plans\nkey: [name]\nset: reference\nenvs: [staging, prod]\nrows:\n"
        "  - {name: pro, price: 10}\noverrides:\n  prod:\n    - {name: pro, price: 12}\n")
    (seeds / "demo.yaml").write_text(
        "table: plans\nkey: [name]\nset: reference\nenvs: [dev]\nrows:\n  - {name: demo}\n")
    chosen = declarations.load(tmp_path / "sql", load_environment("eu-prod", config_dir=tmp_path))
    assert [(s.table, s.rows) for s in chosen] == [("plans", ({"name": "pro", "price": 12},))]


@pytest.mark.parametrize("name", ["../prod", "eu prod", "", "-x", "a'b"])
def test_a_name_that_is_no_stack_name_is_exit_5_and_reads_no_file(tmp_path, name):
    with pytest.raises(ConfigError) as caught:
        load_environment(name, config_dir=tmp_path)
    assert caught.value.exit_code == 5
    assert "is not an environment name" in str(caught.value)
