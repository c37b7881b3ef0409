"""Every mutant of `make mutate` (mutate/mutants.py) still applies and names tests that
exist: code that moved, or a renamed test, would otherwise leave its mutants stale or in
error at the end of a half-hour run that nobody starts, and the bug it plants untested.
A change that moves a mutant's snippet updates the mutant in the same commit."""

from __future__ import annotations

import re

from mutate.mutants import MUTANTS
from mutate.runner import stale
from tests.conftest import ROOT


def test_every_test_a_mutant_names_exists():
    assert MUTANTS
    for mutant in MUTANTS:
        assert mutant.tests, mutant.id
        for test in mutant.tests:
            path, _, name = test.partition("::")
            assert (ROOT / path).exists(), f"{mutant.id}: {path}"
            if name:
                source = (ROOT / path).read_text()
                function = name.split("[")[0]
                assert re.search(rf"^(async )?def {function}\(", source, re.MULTILINE), (
                    f"{mutant.id}: {test}")


def test_mutant_ids_are_unique():
    ids = [m.id for m in MUTANTS]
    assert len(ids) == len(set(ids))


def test_every_mutant_applies_to_the_tree():
    found = {m.id: why for m in MUTANTS if (why := stale(m))}
    assert found == {}, "update these mutants to the code (python -m mutate --check)"
