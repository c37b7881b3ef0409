"""Prisma Migrate: migrations/<timestamp>_<name>/migration.sql, forward-only."""

from __future__ import annotations

import re
from pathlib import Path

from shipshape.engine.importers.foreign import Foreign, ForeignTree, read_text

_NAME = re.compile(r"^(?P<version>\d+)_(?P<name>.+)$")


def read(path: Path) -> ForeignTree:
    root = path / "migrations" if (path / "migrations").is_dir() else path
    found, unsupported = [], []
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        match = _NAME.match(directory.name)
        if not match or not (directory / "migration.sql").is_file():
            unsupported.append(f"{directory}: not a Prisma migration (<timestamp>_<name>/migration.sql)")
            continue
        found.append(Foreign("prisma", directory.name, match["name"],
                             read_text(directory / "migration.sql"), None,
                             directory / "migration.sql"))
    found.sort(key=lambda f: (int(_NAME.match(f.version)["version"]), f.version))
    return ForeignTree(found, unsupported)
