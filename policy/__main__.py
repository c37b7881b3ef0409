"""The policy pack: `pulumi preview --policy-pack policy/` (or `pulumi up --policy-pack policy/`).

The policies and their validate functions are in policies.py (unit-tested); this file only
assembles them.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from policies import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name="shipshape", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
