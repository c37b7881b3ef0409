"""Passwords never leave the process, however the DSN is written: SQLAlchemy schemes,
misspelt keys, an unencoded '@', and DSNs that libpq cannot parse at all."""

from __future__ import annotations

import json

import pytest

from shipshape.secrets import redact, register_dsn
from tests.conftest import run_invoke

SECRET = "Zq9-not-a-real-pw"

FORMS = [
    f"postgresql+psycopg://app:{SECRET}@127.0.0.1:5432/db",
    f"postgres://app:{SECRET}@127.0.0.1/db?sslmode=disable",
    f"host=127.0.0.1 passwd={SECRET} dbname=db",
    f"host=127.0.0.1 pwd={SECRET} dbname=db",
    f"host=127.0.0.1 password='{SECRET} with space' dbname=db",
    f"postgresql://app:{SECRET[:6]}@{SECRET[6:]}@127.0.0.1/db",
    f"postgresql://app:{SECRET}@127.0.0.1:notaport/db",
    f"host=127.0.0.1 dbname=db password={SECRET} =broken",
]


@pytest.mark.parametrize("dsn", FORMS)
def test_redact_hides_every_form(dsn):
    register_dsn(dsn)
    shown = redact(f"could not connect with {dsn}: {dsn.upper()} {dsn}")
    for piece in (SECRET, SECRET[:6], SECRET[6:]):
        assert piece not in shown


def test_redact_leaves_ordinary_text_alone():
    text = "applied by root@build-host at 2026-11-29; postgresql://app@db/x has no password"
    assert redact(text) == text


@pytest.mark.parametrize("dsn", FORMS)
@pytest.mark.parametrize("command", [
    ("db.status",), ("deploy", "--json"), ("doctor",), ("db.migrate", "--dry-run"),
])
def test_no_command_prints_the_password(dsn, command):
    result = run_invoke(*command, "--dsn", dsn, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode in (2, 5), output
    for piece in (SECRET, SECRET[:6], SECRET[6:]):
        assert piece not in output, f"{command} leaked part of the password:\n{output}"
    if "--json" in command and result.stdout.strip():
        json.loads(result.stdout)  # still one valid document


def test_unencoded_at_is_refused_with_the_fix():
    result = run_invoke("db.status", "--dsn", f"postgresql://app:ab@cd{SECRET}@127.0.0.1/db")
    assert result.returncode == 5
    assert "%40" in result.stderr and SECRET not in result.stderr
