"""Database fleets: one SQL tree deployed to many databases, in waves, resumable.

A fleet file (spec.py) lists the databases, each with a DSN or the environment variable
holding one, and labels; one env profile and SQL tree for all. A run (running.py) sends
every database through the same pipeline.deploy (its own deploy lock, env stamp and
verify), in waves: the canary first, then the rest with bounded parallelism, halting on
the first failure (or after max_failures). The run id (plan.py: the fleet and the tree's
checksum) is recorded in each database's shipshape.deployments row, so the same command
continues a stopped run and never deploys a database twice, and `--shard i/N` splits a
fleet among N processes with no coordinator of our own.

The package, a module per concept:

- spec.py: the fleet file, validated with file:line problems; DSN resolution
- plan.py: shards (a stable hash of the name), waves, the run id
- running.py: prepare (everything checked before a database is touched), the run, its
  outcomes, the Watcher it reports to, and its journal in the state dir
- reports.py: one Markdown and JSON report per run in reports/
- survey.py: read-only looks: the dry run's plan per database, fleet.status
- doctor.py: fleet.doctor, findings aggregated across databases
"""

from shipshape.ops.fleets.doctor import Aggregate, FleetDiagnosis, diagnose, render_text
from shipshape.ops.fleets.plan import Shard, Wave, parse_shard, shard_of
from shipshape.ops.fleets.running import (
    FleetRun,
    Outcome,
    Prepared,
    Watcher,
    deploy,
    prepare,
)
from shipshape.ops.fleets.spec import Fleet, Member, load
from shipshape.ops.fleets.survey import DryRun, MemberPlan, MemberStatus, Status, dry_run, status

__all__ = [
    "Aggregate", "DryRun", "Fleet", "FleetDiagnosis", "FleetRun", "Member", "MemberPlan",
    "MemberStatus", "Outcome", "Prepared", "Shard", "Status", "Watcher", "Wave", "deploy",
    "diagnose", "dry_run", "load", "parse_shard", "prepare", "render_text", "shard_of",
    "status",
]
