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
