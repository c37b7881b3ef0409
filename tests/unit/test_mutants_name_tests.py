"""Every test a mutant of `make mutate` names exists (mutate/mutants.py): a renamed test
would turn its mutants into errors at the end of a half-hour run, not here. Whether each
mutant's snippet still occurs is `python -m mutate --check` (the code may move first)."""

from __future__ import annotations

import re

from mutate.mutants import MUTANTS
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
