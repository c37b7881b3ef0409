"""db.baseline --from TOOL: which migrations the other tool's own history says are applied,
mapped onto the imported tree through each migration's `-- shipshape:imported-from`.

prisma          _prisma_migrations: finished_at set, rolled_back_at not; a row neither
                finished nor rolled back is a failed migration: refused.
flyway          flyway_schema_history: versioned rows with success; a failed row: refused.
dbmate          schema_migrations(version): every row is applied.
golang-migrate  schema_migrations(version, dirty): one row, every version up to it is
                applied; dirty (a migration stopped half-way): refused.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from shipshape.engine import migrations
from shipshape.engine.render import directive_arguments
from shipshape.errors import ConfigError, Refused

TABLES = {"prisma": "_prisma_migrations", "flyway": "flyway_schema_history",
          "dbmate": "schema_migrations", "golang-migrate": "schema_migrations"}


def _table(conn: psycopg.Connection, tool: str) -> str:
    name = TABLES[tool]
    found = conn.execute("SELECT to_regclass(%s)::text", [name]).fetchone()[0]
    if found is None:
        raise Refused(f"No {name} table in this database: it has no {tool} history to adopt. "
                      f"Use `invoke db.baseline --version N` to adopt it by its schema alone.")
    return found


def applied(conn: psycopg.Connection, tool: str, imported: list[str]) -> list[str]:
    """The tool's applied versions, as they appear in imported-from directives."""
    if tool not in TABLES:
        raise ConfigError(f"--from {tool}: unknown tool; known: {', '.join(TABLES)}.")
    table = _table(conn, tool)
    if tool == "prisma":
        rows = conn.execute(f"SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NOT NULL "
                            f"FROM {table} ORDER BY started_at").fetchall()
        failed = [name for name, finished, rolled_back in rows if not finished and not rolled_back]
        if failed:
            raise Refused(f"{table} records failed migration(s) {', '.join(failed)}: resolve them "
                          f"with Prisma (`prisma migrate resolve`) before adopting.")
        return [name for name, finished, rolled_back in rows if finished and not rolled_back]
    if tool == "flyway":
        rows = conn.execute(f"SELECT version, success, type FROM {table} "
                            f"WHERE version IS NOT NULL ORDER BY installed_rank").fetchall()
        failed = [version for version, success, _ in rows if not success]
        if failed:
            raise Refused(f"{table} records failed migration(s) {', '.join(failed)}: repair them "
                          f"with Flyway before adopting.")
        done: list[str] = []
        for version, _, kind in rows:
            if kind.startswith("UNDO"):
                done = [v for v in done if v != version]
            elif kind not in ("BASELINE", "SCHEMA") and version not in done:
                done.append(version)
        return done
    if tool == "dbmate":
        return [str(v) for (v,) in conn.execute(f"SELECT version FROM {table} ORDER BY version")]
    rows = conn.execute(f"SELECT version, dirty FROM {table}").fetchall()
    if any(dirty for _, dirty in rows):
        raise Refused(f"{table} is dirty at version {rows[0][0]}: a golang-migrate migration "
                      f"stopped half-way. Fix the schema by hand and `migrate force` the version "
                      f"it really is at, then adopt. Nothing was recorded.")
    if not rows:
        return []
    at = int(rows[0][0])
    return [v for v in imported if int(v) <= at]


def imported_versions(sql_dir: Path, tool: str) -> dict[str, int]:
    """Foreign version -> shipshape version, from the imported-from directives."""
    found = {}
    for source in migrations.discover(sql_dir):
        value = directive_arguments(source.migrate_path.read_text()).get("imported-from", "")
        origin, _, version = value.partition(" ")
        if origin == tool and version:
            found[version] = source.version
    return found


def tools(sql_dir: Path) -> set[str]:
    """The tools the tree's migrations were imported from (their history tables are outside
    the boundary of what the migrations own: engine.boundary)."""
    found = set()
    for source in migrations.discover(sql_dir):
        value = directive_arguments(source.migrate_path.read_text()).get("imported-from", "")
        origin = value.partition(" ")[0]
        if origin in TABLES:
            found.add(origin)
    return found


def baseline_version(conn: psycopg.Connection, sql_dir: Path, tool: str) -> int:
    """The version to baseline at: every applied foreign migration maps to an imported one,
    and they are exactly migrations 1..N of the tree."""
    mapping = imported_versions(sql_dir, tool)
    if not mapping:
        raise Refused(f"No migration in {sql_dir} was imported from {tool} "
                      f"(`-- shipshape:imported-from {tool} ...`); run `invoke db.import` first.")
    done = applied(conn, tool, [v for v in mapping])
    unknown = [v for v in done if v not in mapping]
    if unknown:
        raise Refused(f"The database's {tool} history has applied migration(s) that the imported "
                      f"tree does not contain: {', '.join(unknown)}. Import the whole tree again.")
    if not done:
        raise Refused(f"The {tool} history records nothing applied: deploy instead of baselining.")
    versions = sorted(mapping[v] for v in done)
    top = versions[-1]
    everything = [s.version for s in migrations.discover(sql_dir)]
    gaps = [v for v in everything if v <= top and v not in versions]
    if gaps:
        raise Refused(f"The {tool} history skips migration(s) {', '.join(f'{v:04d}' for v in gaps)} "
                      f"below {top:04d}; baseline can only adopt 0001..N. Nothing was recorded.")
    return top


def tolerate(tool: str):
    """The tool's own history table is not part of the schema the proof compares."""
    name = TABLES.get(tool, "")

    def tolerated(difference) -> bool:
        return (difference.change == "unexpected" and difference.kind == "table"
                and difference.name.rpartition(".")[2].strip('"') == name)
    return tolerated
