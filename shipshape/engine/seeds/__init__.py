"""Declarative seed data -> idempotent upserts, and a read-only check of them.

A seed file is sql/seeds/<name>.yaml::

    table: ai_models
    key: [modelKey]          # columns of a unique constraint (the ON CONFLICT target)
    set: reference           # Environment.seed_sets decides which sets an env gets
    envs: [local, dev]       # optional; default: every env
    initial: [creditBalance] # optional; initial data: inserted with a new row, never
                             # overwritten, never compared (users change it)
    rows:
      - {modelKey: a, creditCost: 8, capabilities: {width: 512}}   # dict/list -> jsonb
    overrides:               # optional; per env, rows matched by key, values replaced
      prod:
        - {modelKey: a, enabled: false}

``load`` validates every file (whichever env it is for) and returns the seeds that
apply to one env, overrides merged. ``apply`` upserts them all in one transaction;
``script`` writes the same upserts as a psql script; ``check`` compares the declared
rows with the database without writing. Seeds insert and update; they never delete.
Every declared column that is neither a key nor ``initial`` is reference data: a
difference is a finding (SEED_DIFFERS), and a deploy upserts it back.

A module per concept: ``model`` (a seed and what apply and check found),
``declarations`` (the files: loading, validation, an env's seeds), ``statements`` (the
SQL they render), ``applying`` and ``checking``.
"""

from shipshape.engine.seeds.applying import apply
from shipshape.engine.seeds.checking import check
from shipshape.engine.seeds.declarations import FIELDS, MAX_IDENTIFIER, REQUIRED, SEEDS_DIR, load
from shipshape.engine.seeds.model import Seed, SeedCheck, SeedResult, describe_key, show_value
from shipshape.engine.seeds.statements import adapt, script

__all__ = [
    "FIELDS", "MAX_IDENTIFIER", "REQUIRED", "SEEDS_DIR", "Seed", "SeedCheck", "SeedResult",
    "adapt", "apply", "check", "describe_key", "load", "script", "show_value",
]
