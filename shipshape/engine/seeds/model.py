"""A seed file for one env, and what applying and checking it found."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from shipshape.text import listing

_SHOWN = 5


@dataclass(frozen=True)
class Seed:
    """One seed file, for one env: its rows after that env's overrides."""

    path: Path
    table: str
    key: tuple[str, ...]
    set: str
    rows: tuple[dict, ...]
    # Per row, where each value stands in the file: column -> line, and None -> the
    # row's own line (an override's line for the values it replaces). For messages only.
    lines: tuple[dict, ...] = field(default=(), compare=False, repr=False)
    # Initial data: inserted with a new row, never overwritten, never compared. A user
    # owns these values once the row exists (the demo user's creditBalance).
    initial: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.path.name

    def key_of(self, row: dict) -> tuple:
        return tuple(row[column] for column in self.key)

    def describe_key(self, key: tuple) -> str:
        return describe_key(key)

    def where(self, index: int, column: str | None = None) -> str:
        """`file:line` of row `index` (of its `column` when given), for messages."""
        lines = self.lines[index] if index < len(self.lines) else {}
        line = lines.get(column) or lines.get(None)
        return f"{self.path}:{line}" if line else f"{self.path}: rows[{index}]"

    def reference(self, columns) -> list[str]:
        """Of columns, the reference data: not key columns, not initial. Seeds keep these
        equal to the declaration (upsert) and verify compares them."""
        return [c for c in columns if c not in self.key and c not in self.initial]


@dataclass
class SeedResult:
    """What apply did to one seed file."""

    path: Path
    table: str
    inserted: int
    updated: int
    unchanged: int

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated)

    def summary(self) -> str:
        return (f"{self.table}: {self.inserted} inserted, {self.updated} updated, "
                f"{self.unchanged} unchanged ({self.path.name})")


@dataclass
class SeedCheck:
    """How the database compares with one seed file's declared rows."""

    seed: Seed
    total: int
    ok: int = 0
    missing: list[tuple] = field(default_factory=list)
    # (key values, column, expected, actual)
    differing: list[tuple[tuple, str, object, object]] = field(default_factory=list)
    error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.error is None and not self.missing and not self.differing

    def summary(self) -> str:
        table = self.seed.table
        if self.error:
            return f"{table}: {self.error}"
        if self.healthy:
            return f"{table}: all {self.total} declared rows present and equal"
        if not self.differing and len(self.missing) == self.total:
            return (f"{table}: 0 of {self.total} declared rows present "
                    f"(missing {self._missing()})")
        parts = [f"{table}: {self.ok} of {self.total} rows equal"]
        if self.missing:
            parts.append(f"missing {self._missing()}")
        return "; ".join(parts + self._differing())

    def _missing(self) -> str:
        return listing([describe_key(k) for k in self.missing], _SHOWN)

    def _differing(self) -> list[str]:
        """One part per differing row (the first few), naming each differing column."""
        by_row: dict[tuple, list[str]] = {}
        for key, column, expected, actual in self.differing:
            by_row.setdefault(key, []).append(
                f"{column} is {show_value(actual)}, expected {show_value(expected)}")
        shown = list(by_row.items())
        parts = [f"{describe_key(key)}: {', '.join(diffs)}" for key, diffs in shown[:_SHOWN]]
        if len(shown) > _SHOWN:
            parts.append(f"and {len(shown) - _SHOWN} more differing rows")
        return parts


def describe_key(key: tuple) -> str:
    """A row key for messages: the value itself, or (a, b) for a composite key."""
    if len(key) == 1:
        return str(key[0])
    return "(" + ", ".join(str(value) for value in key) + ")"


def show_value(value) -> str:
    """A value as an operator reads it: true, NULL, 'text', {"json": 1}."""
    if value is None:
        text = "NULL"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
