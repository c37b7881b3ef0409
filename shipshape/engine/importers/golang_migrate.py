"""golang-migrate: <version>_<name>.up.sql and <version>_<name>.down.sql."""

from __future__ import annotations

import re
from pathlib import Path

from shipshape.engine.importers.foreign import Foreign, ForeignTree, read_text

_FILE = re.compile(r"^(?P<version>\d+)_(?P<name>.+)\.(?P<which>up|down)\.sql$")


def read(path: Path) -> ForeignTree:
    ups, downs, unsupported = {}, {}, []
    for file in sorted(path.glob("*.sql")):
        match = _FILE.match(file.name)
        if not match:
            unsupported.append(f"{file}: not a golang-migrate name (<version>_<name>.up.sql)")
            continue
        (ups if match["which"] == "up" else downs)[match["version"]] = (file, match["name"])
    found = []
    for version in sorted(ups, key=lambda v: (int(v), v)):
        file, name = ups[version]
        down = read_text(downs.pop(version)[0]) if version in downs else None
        found.append(Foreign("golang-migrate", version, name, read_text(file), down, file))
    unsupported += [f"{file}: down file without an up file" for file, _ in downs.values()]
    return ForeignTree(found, unsupported)
