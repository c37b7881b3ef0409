"""Small SQL trees written by tests, in the shipped layout."""

from __future__ import annotations

import warnings
from pathlib import Path


def write_migration(root: Path, name: str, up: str, down: str) -> Path:
    directory = root / "migrations" / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "migrate.sql.j2").write_text(up)
    (directory / "rollback.sql.j2").write_text(down)
    return directory


def small_tree(root: Path) -> Path:
    """Two migrations and a seed: quick to apply, enough to exercise every gate."""
    (root / "seeds").mkdir(parents=True, exist_ok=True)
    (root / "checks").mkdir(parents=True, exist_ok=True)
    write_migration(root, "0001_items",
                    "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL UNIQUE);\n",
                    "-- shipshape:destructive\nDROP TABLE items;\n")
    write_migration(root, "0002_item_price",
                    "ALTER TABLE items ADD COLUMN price integer NOT NULL DEFAULT 0;\n",
                    "-- shipshape:destructive\nALTER TABLE items DROP COLUMN price;\n")
    (root / "seeds" / "items.yaml").write_text(
        "table: items\nkey: [name]\nset: reference\nrows:\n"
        "  - {name: apple, price: 3}\n  - {name: pear, price: 5}\n")
    (root / "checks" / "negative_price.sql.j2").write_text(
        "-- description: items with a negative price\n-- severity: error\n"
        "-- fix: correct the price\nSELECT name FROM items WHERE price < 0\n")
    return root


def phased_tree(root: Path) -> Path:
    """small_tree (already written under root), then a heartbeat table as the project's
    0012 makes it, then a contract migration: a check the release before it (0003) may
    still violate."""
    write_migration(root, "0003_app_instances",
                    "CREATE TABLE shipshape.app_instances (instance text PRIMARY KEY, "
                    "release integer NOT NULL, host text NOT NULL DEFAULT '', "
                    "started_at timestamptz NOT NULL DEFAULT now(), "
                    "last_seen timestamptz NOT NULL DEFAULT now());\n",
                    "-- shipshape:destructive\nDROP TABLE shipshape.app_instances;\n")
    write_migration(root, "0004_price_not_negative",
                    "-- shipshape:phase contract\n"
                    "ALTER TABLE items ADD CONSTRAINT items_price_nonneg CHECK (price >= 0);\n",
                    "ALTER TABLE items DROP CONSTRAINT items_price_nonneg;\n")
    return root


def skip_forward_only(migration) -> bool:
    """A migration declared irreversible has no rollback to check: skipped by its
    declaration, and visibly (a warning in the test summary names it and the reason)."""
    if not migration.irreversible:
        return False
    warnings.warn(f"rollback round trip skipped for {migration.name}: declared irreversible "
                  f"({migration.irreversible})", stacklevel=2)
    return True
