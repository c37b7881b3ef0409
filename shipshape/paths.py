"""Where things live: the project root, shipshape's state folder and its reports folder.

Environment variables move the last two (SHIPSHAPE_STATE_DIR, SHIPSHAPE_REPORTS_DIR), so
tests and CI keep them out of the working tree.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root(start: Path | None = None) -> Path:
    """The nearest directory holding Pulumi.yaml, else the working directory."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").exists():
            return candidate
    return here


def state_dir(root: Path | None = None) -> Path:
    """.shipshape/: the embedded server's data, caches, the demo token (git-ignored)."""
    return Path(os.environ.get("SHIPSHAPE_STATE_DIR") or (root or project_root()) / ".shipshape")


def reports_root(reports_dir: Path | str | None = None) -> Path:
    """Where incident reports go: the flag, else SHIPSHAPE_REPORTS_DIR, else reports/."""
    if reports_dir:
        return Path(reports_dir)
    if os.environ.get("SHIPSHAPE_REPORTS_DIR"):
        return Path(os.environ["SHIPSHAPE_REPORTS_DIR"])
    return project_root() / "reports"
