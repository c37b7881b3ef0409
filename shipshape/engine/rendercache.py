"""The cache of rendered migration templates, in the state folder (paths.state_dir).

Rendering 1000 templates with Jinja costs more than applying nothing, so a template's
rendering is kept under a key made of everything it depends on: its own source text,
the env's settings (the templates' context), and every template it can include or
import (the package's own templates and the tree's templates outside migrations/).
Change any of them and the key changes; nothing is ever invalidated by hand.

The cache is only an optimisation: an entry that is missing, unreadable, truncated or
edited is ignored and rebuilt, and a state folder that cannot be written just means
every run renders. Each entry carries the sha256 of its text, checked on every read.
Rendered SQL holds settings, never a secret (settings carry no password), so an entry
holds nothing that `render` would not write.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from shipshape.paths import state_dir

# Bump when the layout of an entry, or what a rendering depends on, changes.
FORMAT = 1
_HEADER = "-- shipshape render cache "


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def key(*parts: object) -> str:
    """The key of an entry: a sha256 over its parts (JSON, so no two part lists collide)."""
    return digest(json.dumps([FORMAT, *parts], sort_keys=True, default=str))


def fingerprint(files: list[Path], root: Path) -> str:
    """One sha256 over the names (relative to root) and contents of files."""
    parts = []
    for path in sorted(files):
        try:
            parts.append((path.relative_to(root).as_posix(), digest(path.read_text())))
        except (OSError, UnicodeDecodeError, ValueError):
            parts.append((str(path), None))  # unreadable now: rendering will say so
    return key(parts)


class RenderCache:
    """Rendered text by key, one file per entry under <state dir>/cache/render/."""

    def __init__(self, directory: Path | None = None):
        self.directory = directory or state_dir() / "cache" / "render"

    def _path(self, entry_key: str) -> Path:
        return self.directory / f"{entry_key[:40]}.sql"

    def get(self, entry_key: str) -> str | None:
        """The text stored under entry_key; None when absent or not intact."""
        try:
            stored = self._path(entry_key).read_text()
        except (OSError, UnicodeDecodeError):
            return None
        header, newline, text = stored.partition("\n")
        if not newline or header != _HEADER + digest(text):
            return None
        return text

    def put(self, entry_key: str, text: str) -> None:
        """Store text under entry_key, atomically (a reader sees all of it or none)."""
        path = self._path(entry_key)
        # a name of this process and thread: a fleet's threads may store the same entry
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            partial.write_text(f"{_HEADER}{digest(text)}\n{text}")
            os.replace(partial, path)
        except OSError:
            # a read-only or full state folder: the next run renders again, that is all
            try:
                partial.unlink(missing_ok=True)
            except OSError:
                pass
