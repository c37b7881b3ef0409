"""Version control, asked through the git command: the earlier versions of a file.

The edited-migration runbook looks here for the version of an applied migration that
the database ran (the one whose checksum its history row records), to name the exact
command that restores it. No git, or a file outside a git work tree: no versions.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

# how far back to look: an applied migration is rarely edited long after it ran
MAX_COMMITS = 200


def versions(path: Path | str, *, limit: int = MAX_COMMITS) -> Iterator[tuple[str, str, str]]:
    """(commit, path relative to the work tree's top, text) for each committed version of
    path, newest first. Nothing when git is missing or path is not under a work tree."""
    path = Path(path).resolve()
    if shutil.which("git") is None or not path.parent.is_dir():
        return
    top = _git(path.parent, "rev-parse", "--show-toplevel")
    if top is None:
        return
    root = Path(top.strip()).resolve()
    relative = path.relative_to(root).as_posix()
    # from the top: `git log -- PATH` reads PATH relative to the current directory
    log = _git(root, "log", f"--max-count={limit}", "--format=%H", "--", relative)
    for commit in (log or "").split():
        text = _git(root, "show", f"{commit}:{relative}")
        if text is not None:
            yield commit, relative, text


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
