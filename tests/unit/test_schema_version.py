"""The app's SCHEMA_VERSION and the migrations of sql/ are one fact written twice."""

from __future__ import annotations

from pathlib import Path

import app
from shipshape.engine import migrations

ROOT = Path(__file__).resolve().parents[2]


def test_the_app_is_built_for_the_newest_migration():
    """/health/ready compares app.SCHEMA_VERSION with the history: unless it is the newest
    migration of sql/, the app refuses every database deployed from this tree."""
    assert app.SCHEMA_VERSION == migrations.discover(ROOT / "sql")[-1].version
