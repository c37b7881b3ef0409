"""The step kinds a runbook step may `do`: one module per kind (migrate, seed, baseline, complete,
rollback, fix, reapply, restore, rerecord, terminate), each holding its arguments, its line in the
guide, its plan and its run; STEP_KINDS (registry.py) is their one table.

- base.py: StepKind, Arg, PlannedStep (the plan a run applies) and Context (what both see)
- state.py: the history and schema a plan sees (live, projected, expected by migrations)
- sqltext.py: the exact SQL a plan shows
- rebuild.py: restore's statements for each kind of difference, or why it leaves one
"""

from shipshape.ops.runbooks.steps.base import Arg, Context, PlannedStep, StepKind
from shipshape.ops.runbooks.steps.fix import FIXES_DIR
from shipshape.ops.runbooks.steps.registry import STEP_KINDS

__all__ = ["FIXES_DIR", "STEP_KINDS", "Arg", "Context", "PlannedStep", "StepKind"]
