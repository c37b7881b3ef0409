"""Responses built by PostgreSQL (json_agg) and by Python must write a timestamp alike."""

from datetime import datetime, timezone

import psycopg
import pytest

from app.store import timestamp


@pytest.mark.parametrize("microsecond", [0, 1, 10, 100000, 739500, 123456])
def test_python_writes_timestamps_as_postgresql_json_does(admin_dsn, microsecond):
    value = datetime(2026, 11, 22, 2, 58, 11, microsecond, tzinfo=timezone.utc)
    with psycopg.connect(admin_dsn) as conn:
        conn.execute("SET timezone = 'UTC'")
        expected = conn.execute("SELECT to_json(%s::timestamptz) #>> '{}'", [value]).fetchone()[0]
    assert timestamp(value) == expected
