"""dbmate: <version>_<name>.sql with `-- migrate:up` and `-- migrate:down` sections;
`transaction:false` on a section header runs it outside a transaction."""

from __future__ import annotations

import re
from pathlib import Path

from shipshape.engine.importers.foreign import Foreign, ForeignTree, read_text

_FILE = re.compile(r"^(?P<version>\d+)_(?P<name>.+)\.sql$")
_SECTION = re.compile(r"^--\s*migrate:(?P<which>up|down)(?P<options>[^\n]*)\n?", re.MULTILINE)


def read(path: Path) -> ForeignTree:
    found, unsupported = [], []
    for file in sorted(path.glob("*.sql")):
        match = _FILE.match(file.name)
        if not match:
            unsupported.append(f"{file}: not a dbmate migration name (<version>_<name>.sql)")
            continue
        text = read_text(file)
        sections = list(_SECTION.finditer(text))
        parts = {}
        for number, section in enumerate(sections):
            end = sections[number + 1].start() if number + 1 < len(sections) else len(text)
            parts[section["which"]] = (text[section.end():end], section["options"])
        if "up" not in parts:
            unsupported.append(f"{file}: no `-- migrate:up` section")
            continue
        up, options = parts["up"]
        down = parts["down"][0] if "down" in parts and parts["down"][0].strip() else None
        found.append(Foreign("dbmate", match["version"], match["name"], up, down, file,
                             no_transaction="transaction:false" in options.replace(" ", "")))
    found.sort(key=lambda f: (int(f.version), f.version))
    return ForeignTree(found, unsupported)
