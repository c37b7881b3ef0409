"""Redaction beyond the DSN forms of test_secrets: a password in key=value text that was
never registered (a log line, another tool's message), a DSN that libpq cannot parse at
all, and secrets registered on their own (the app password, the pieces libpq quotes)."""

from __future__ import annotations

import uuid

import pytest

from shipshape.secrets import redact, register_dsn, register_secret


def fresh() -> str:
    return f"pw-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("key", ["password", "passwd", "passwort", "pwd", "pass",
                                 "PGPASSWORD", "Password "])
def test_key_value_passwords_are_hidden_without_being_registered(key):
    secret = fresh()
    shown = redact(f"psql failed: host=db {key}={secret} dbname=app")
    assert secret not in shown and "host=db" in shown


def test_a_dsn_libpq_cannot_parse_is_hidden_whole():
    secret = fresh()
    dsn = f"host=127.0.0.1 dbname=db {secret}"  # a stray word: no key, no URL
    register_dsn(dsn)
    assert secret not in redact(f"invalid connection option in {dsn!r}")


def test_a_registered_secret_is_hidden_wherever_it_appears():
    secret = fresh()
    register_secret(secret)
    assert redact(f"ALTER ROLE app PASSWORD '{secret}'; echo {secret}") == \
        "ALTER ROLE app PASSWORD '***'; echo ***"
