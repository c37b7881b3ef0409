"""The root .dockerignore, the only one the legacy builder (no BuildKit) reads: an
allow-list with what app/Dockerfile and infra/gate.Dockerfile COPY and nothing else of
the checkout (without it the build context was the whole tree, .venv included), and a
superset of each <Dockerfile>.dockerignore, which BuildKit reads instead.
tests/container measures the context a real build sends."""

from __future__ import annotations

import shlex
from pathlib import Path

from tests.conftest import ROOT

DOCKERFILES = [ROOT / "app" / "Dockerfile", ROOT / "infra" / "gate.Dockerfile"]


def patterns(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def allowed(path: Path) -> set[str]:
    return {p[1:].rstrip("/") for p in patterns(path) if p.startswith("!")}


def copy_sources(dockerfile: Path) -> set[str]:
    """The top-level files and folders a Dockerfile's COPY instructions read."""
    text = dockerfile.read_text().replace("\\\n", " ")
    sources = set()
    for line in text.splitlines():
        if line.strip().upper().startswith("COPY "):
            words = [w for w in shlex.split(line.strip())[1:] if not w.startswith("--")]
            sources |= {Path(source).parts[0] for source in words[:-1]}
    return sources


def test_root_dockerignore_is_an_allow_list_of_what_the_dockerfiles_copy():
    root = ROOT / ".dockerignore"
    assert patterns(root)[0] in ("*", "**"), "the first pattern must exclude everything"
    allow = allowed(root)
    needed = set()
    for dockerfile in DOCKERFILES:
        needed |= copy_sources(dockerfile)
        own = Path(f"{dockerfile}.dockerignore")
        assert allowed(own) <= allow, f"{own.name} lets through more than .dockerignore"
    assert needed == allow, f"COPY reads {sorted(needed)}; .dockerignore allows {sorted(allow)}"
    for never in (".venv", ".git", ".shipshape", ".tools", "tests", "reports"):
        assert never not in allow
