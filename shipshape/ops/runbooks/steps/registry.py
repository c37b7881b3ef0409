"""The step kinds, one registry: the runbook file's schema (loading.py), the guide
(guide.py) and the run (running.py) all read this table. In the order the guide lists
them."""

from __future__ import annotations

from shipshape.ops.runbooks.steps.base import StepKind
from shipshape.ops.runbooks.steps.baseline import BASELINE
from shipshape.ops.runbooks.steps.complete import COMPLETE
from shipshape.ops.runbooks.steps.fix import FIX
from shipshape.ops.runbooks.steps.migrate import MIGRATE
from shipshape.ops.runbooks.steps.reapply import REAPPLY
from shipshape.ops.runbooks.steps.rerecord import RERECORD
from shipshape.ops.runbooks.steps.restore import RESTORE
from shipshape.ops.runbooks.steps.rollback import ROLLBACK
from shipshape.ops.runbooks.steps.seed import SEED
from shipshape.ops.runbooks.steps.terminate import TERMINATE

STEP_KINDS: dict[str, StepKind] = {kind.name: kind for kind in (
    MIGRATE, SEED, BASELINE, COMPLETE, ROLLBACK, FIX, REAPPLY, RESTORE, RERECORD, TERMINATE)}
