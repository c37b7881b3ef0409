"""The README's promises point at tests that exist: every `tests/...` it names is a file,
and every `file::name` a test function in it (a renamed test would leave a promise
pointing at nothing)."""

from __future__ import annotations

import re

from tests.conftest import ROOT

NAMED = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


def test_every_test_the_readme_names_exists():
    text = (ROOT / "README.md").read_text()
    named = NAMED.findall(text)
    assert len(named) >= 20
    for path, name in named:
        assert (ROOT / path).is_file(), path
        if name:
            source = (ROOT / path).read_text()
            assert re.search(rf"^(async )?def {name}\(", source, re.MULTILINE), f"{path}::{name}"
