"""fleet.doctor: doctor on every database, its findings aggregated across the fleet.

"12 of 200 databases: DRIFT_MISSING index items_by_price" reads better than 200 reports:
findings are grouped by (code, object) with the databases that have them, most common
first, each with the runbook that fixes it (as doctor assigns it on each database).
Read-only, like doctor; an unreachable database is its DB_UNREACHABLE finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shipshape.errors import ProblemsFound
from shipshape.ops import doctor as doctor_
from shipshape.ops import runbooks, triage
from shipshape.ops.fleets.running import Prepared
from shipshape.ops.fleets.survey import each
from shipshape.text import listing


@dataclass
class Aggregate:
    """One finding (code and object) and every database that has it."""

    code: str
    severity: str
    object: str
    runbook: str | None
    command: str
    message: str  # as the first database says it
    fix: str
    databases: list[str] = field(default_factory=list)


@dataclass
class FleetDiagnosis:
    fleet: str
    env: str
    shard: str | None
    total: int
    aggregates: list[Aggregate]
    healthy: list[str]
    unhealthy: list[str]
    by_database: dict[str, list] = field(default_factory=dict)  # name -> its findings

    def by_code(self) -> dict[str, list[str]]:
        """Each code and the databases that have it (any object)."""
        codes: dict[str, list[str]] = {}
        for a in self.aggregates:
            names = codes.setdefault(a.code, [])
            names += [n for n in a.databases if n not in names]
        return codes

    def as_dict(self) -> dict:
        return {"fleet": self.fleet, "env": self.env, "shard": self.shard,
                "databases": self.total, "healthy": self.healthy, "unhealthy": self.unhealthy,
                "codes": {code: {"count": len(names), "databases": names}
                          for code, names in self.by_code().items()},
                "findings": [{**a.__dict__, "count": len(a.databases), "of": self.total}
                             for a in self.aggregates],
                "by_database": self.by_database}

    def check(self) -> None:
        if self.unhealthy:
            first = next((a for a in self.aggregates if a.severity == "error"), None)
            hint = (f" Most common: {first.code} {first.object} on {len(first.databases)}; "
                    f"`{first.command}` fixes it on each." if first and first.runbook else "")
            raise ProblemsFound(
                f"fleet.doctor: {len(self.unhealthy)} of {self.total} database(s) of fleet "
                f"{self.fleet} have problems ({listing(self.unhealthy)}).{hint}",
                result=self)


def diagnose(prepared: Prepared, *, parallel: int | None = None,
             runbooks_dir=None, long_transaction: str | None = None) -> FleetDiagnosis:
    """Doctor on each database of this shard, read-only, at most `parallel` at once."""
    parallel = max(1, int(parallel or prepared.fleet.parallel))
    books = runbooks.load(runbooks_dir, sql_dir=prepared.sql_dir)
    env = prepared.env

    def command(book) -> str:
        return (runbooks.command(book, env.name, sql_dir=prepared.sql_dir,
                                 long_transaction=long_transaction, runbooks_dir=runbooks_dir)
                + " --dsn <the database's DSN>")

    def look(member) -> list[triage.Group]:
        diagnosis = doctor_.diagnose(
            prepared.targets[member.name], prepared.sql_dir, code=prepared.code,
            long_transaction=long_transaction or doctor_.DEFAULT_LONG_TRANSACTION)
        return triage.group(diagnosis.findings, books, command=command)

    members = list(prepared.members)
    results = dict(zip([m.name for m in members], each(members, look, parallel), strict=True))
    aggregates: dict[tuple, Aggregate] = {}
    by_database = {}
    for name, groups in results.items():
        by_database[name] = triage.tagged(groups)
        for group in groups:
            for f in group.findings:
                key = (f.code, f.object, f.severity, f.runbook)
                if key not in aggregates:
                    aggregates[key] = Aggregate(f.code, f.severity, f.object, f.runbook,
                                                group.command, f.message, f.fix)
                if name not in aggregates[key].databases:
                    aggregates[key].databases.append(name)
    ordered = sorted(aggregates.values(),
                     key=lambda a: (a.severity != "error", -len(a.databases), a.code, a.object))
    unhealthy = [n for n, found in by_database.items()
                 if any(f.severity == "error" for f in found)]
    return FleetDiagnosis(prepared.fleet.name, env.name,
                          str(prepared.shard) if prepared.shard else None, len(members),
                          ordered, [n for n in by_database if n not in unhealthy], unhealthy,
                          by_database)


def render_text(found: FleetDiagnosis) -> str:
    """The aggregate for a terminal: one block per finding, most common first."""
    lines = [f"fleet.doctor: {found.fleet} ({found.env}"
             + (f", shard {found.shard}" if found.shard else "") + f"), {found.total} "
             f"database(s): {len(found.healthy)} healthy, {len(found.unhealthy)} with problems"]
    if not found.aggregates:
        lines.append("✓ every database passed every check.")
        return "\n".join(lines) + "\n"
    lines.append("")
    for a in found.aggregates:
        mark = "✗" if a.severity == "error" else "!"
        lines.append(f"{mark} {a.code}  {a.object}: {len(a.databases)} of {found.total} "
                     f"database(s) ({listing(a.databases, 8)})")
        lines.append(f"    e.g. {a.databases[0]}: {a.message}")
        lines.append(f"    fix: {a.command}" if a.runbook else f"    fix: {a.fix}")
    lines += ["", "By code: " + ", ".join(f"{code} {len(names)}/{found.total}"
                                          for code, names in found.by_code().items())]
    return "\n".join(lines) + "\n"
