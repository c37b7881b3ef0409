"""A migration read from another tool's tree, before it becomes a shipshape directory."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Foreign:
    tool: str
    version: str            # the foreign tool's own identifier, kept in imported-from
    name: str               # its description, for the slug
    up: str                 # the forward SQL, byte for byte
    down: str | None        # the rollback SQL, None when the tool has none
    source: Path
    no_transaction: bool = False  # the tool itself runs it outside a transaction


@dataclass
class ForeignTree:
    migrations: list[Foreign]
    unsupported: list[str]  # files the import cannot carry over, with why


def version_key(version: str) -> tuple:
    """Numeric-aware order: 1.10 after 1.9, 20240101 before 20240102."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"[._]", version))


def read_text(path: Path) -> str:
    # newline="" keeps \r\n as it is: not a byte of the SQL changes
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()
