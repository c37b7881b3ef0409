"""The boundary of what the migrations own: objects in the live database that shipshape
does not manage, so that comparing the catalog with a shadow database ignores them.

An env declares them in its stack file (Pulumi.<env>.yaml, or SHIPSHAPE_<SETTING>)::

    shipshape:unmanaged_extensions: [pg_stat_statements]
    shipshape:unmanaged_schemas: [reporting]          # everything in them
    shipshape:unmanaged_relations: ["v_report*", "dba_*"]   # tables, views, sequences
    shipshape:unmanaged_roles: [reporting_ro]         # their grants are not ours

Relations and roles are globs (fnmatch, case-sensitive) on the names a catalog snapshot
uses: ``avatars`` in public, ``other.audit`` elsewhere. A declared relation takes its
columns, indexes, constraints, triggers, owned sequences and grants with it.

A foreign tool's own history table (``_prisma_migrations``, ``flyway_schema_history``,
``schema_migrations``) is declared by the tree itself: when a migration was imported from
that tool (``-- shipshape:imported-from TOOL ...``), its table is outside the boundary,
unless a migration creates a table of that name (then it is compared as any other).

Declared objects are left out on both sides, so neither a difference on them nor one
that a migration causes on them is drift; ``split`` returns them apart, for the
"ignored (declared)" entries of `--json`. Anything undeclared stays a finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from shipshape.engine import catalog
from shipshape.engine.importers import foreign_history
from shipshape.settings import Environment

# Sections whose objects are relations, and those whose objects belong to one (the
# "table" attribute of their value names it; grants are keyed by it).
_RELATIONS = ("tables", "views", "sequences")
_CHILDREN = ("columns", "indexes", "constraints", "triggers")

IGNORED = "ignored (declared)"


@dataclass(frozen=True)
class Boundary:
    extensions: tuple[str, ...] = ()
    schemas: tuple[str, ...] = ()
    relations: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    # foreign tools' history tables: outside unless a migration creates one of that name
    foreign: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any((self.extensions, self.schemas, self.relations, self.roles, self.foreign))

    def strip(self, snapshot: dict, owned: set[str] | None = None) -> dict:
        """snapshot without the declared objects. owned: the relations the migrations
        create (a foreign table of such a name is theirs, not the foreign tool's)."""
        owned = owned or set()

        def outside(relation: str | None) -> bool:
            return relation is not None and (
                _schema(relation) in self.schemas
                or any(fnmatchcase(relation, glob) for glob in self.relations)
                or (relation in self.foreign and relation not in owned))

        out: dict[str, dict] = {}
        for section, objects in snapshot.items():
            kept = {}
            for name, value in objects.items():
                if section in _RELATIONS:
                    relation = name
                    if section == "sequences" and outside(_owner(value)):
                        continue
                elif section in _CHILDREN:
                    relation = _owner(value) or name.rsplit(".", 1)[0]
                elif section == "grants":
                    relation = name
                    value = {role: privileges for role, privileges in value.items()
                             if not any(fnmatchcase(role, glob) for glob in self.roles)}
                    if not value:
                        continue
                elif section == "extensions":
                    if name in self.extensions or (value or {}).get("schema") in self.schemas:
                        continue
                    relation = None
                else:  # enums, functions: by their schema
                    if _schema(name.split("(", 1)[0]) in self.schemas:
                        continue
                    relation = None
                if not outside(relation):
                    kept[name] = value
            out[section] = kept
        return out


def of(env: Environment, sql_dir: Path | str | None = None) -> Boundary:
    """The env's declared boundary, with the history tables of the tools sql_dir's
    migrations were imported from."""
    foreign = ()
    if sql_dir is not None:
        foreign = tuple(sorted({foreign_history.TABLES[tool]
                                for tool in foreign_history.tools(Path(sql_dir))}))
    return Boundary(extensions=env.unmanaged_extensions, schemas=env.unmanaged_schemas,
                    relations=env.unmanaged_relations, roles=env.unmanaged_roles,
                    foreign=foreign)


def split(expected: dict, actual: dict, boundary: Boundary
          ) -> tuple[list[catalog.Difference], list[catalog.Difference]]:
    """(the differences that are drift, the differences on declared objects only)."""
    found = catalog.diff(expected, actual)
    if not boundary:
        return found, []
    owned = {name for section in _RELATIONS for name in expected.get(section) or {}}
    kept = catalog.diff(boundary.strip(expected, owned), boundary.strip(actual, owned))
    keys = {(d.kind, d.name, d.change) for d in kept}
    return kept, [d for d in found if (d.kind, d.name, d.change) not in keys]


def describe_ignored(differences: list[catalog.Difference]) -> list[dict]:
    """The ignored differences as `--json` shows them."""
    return [{"object": f"{d.kind} {d.name}", "status": IGNORED, "message": d.describe() + "."}
            for d in differences]


def mentioned_roles(expected: dict, env: Environment) -> set[str]:
    """The roles the migrations grant something to (and the env's app role): the only
    roles whose grants a runbook may revoke."""
    roles = {role for by_role in (expected.get("grants") or {}).values() for role in by_role}
    return roles | {env.app_role, "PUBLIC"}


def _schema(name: str) -> str:
    return name.split(".", 1)[0] if "." in name else "public"


def _owner(value) -> str | None:
    return value.get("table") if isinstance(value, dict) else None
