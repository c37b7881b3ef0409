"""Flyway: V<version>__<desc>.sql, U<version>__<desc>.sql (undo: the rollback);
R__<desc>.sql repeatables have no place in an ordered history: reported, not imported."""

from __future__ import annotations

import re
from pathlib import Path

from shipshape.engine.importers.foreign import Foreign, ForeignTree, read_text, version_key

_FILE = re.compile(r"^(?P<kind>[VUR])(?P<version>[0-9][0-9._]*)?__(?P<name>.+)\.sql$")


def _normal(version: str) -> str:
    return version.replace("_", ".")  # Flyway reads V1_1 as version 1.1


def read(path: Path) -> ForeignTree:
    forward, undo, unsupported = {}, {}, []
    for file in sorted(p for p in path.rglob("*.sql")):
        match = _FILE.match(file.name)
        if not match:
            unsupported.append(f"{file}: not a Flyway migration name (V<version>__<desc>.sql)")
        elif match["kind"] == "R":
            unsupported.append(f"{file}: repeatable migrations (R__) are not supported: they "
                               f"rerun whenever they change; make them ordinary migrations")
        elif not match["version"]:
            unsupported.append(f"{file}: no version")
        else:
            (forward if match["kind"] == "V" else undo)[_normal(match["version"])] = (file, match["name"])
    found = []
    for version in sorted(forward, key=version_key):
        file, name = forward[version]
        down = read_text(undo.pop(version)[0]) if version in undo else None
        found.append(Foreign("flyway", version, name, read_text(file), down, file))
    unsupported += [f"{file}: undo for version {v}, which has no V file" for v, (file, _) in undo.items()]
    return ForeignTree(found, unsupported)
