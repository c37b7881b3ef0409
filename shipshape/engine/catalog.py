"""Introspect a schema into a comparable snapshot, and diff two snapshots.

A snapshot is a plain dict, one section per kind of object::

    {"tables": {...}, "columns": {...}, "indexes": {...}, "constraints": {...},
     "sequences": {...}, "views": {...}, "extensions": {...}, "enums": {...},
     "functions": {...}, "triggers": {...}, "grants": {...}}

Each section maps a stable name to a small dict of comparable attributes. Names are
schema-qualified only outside ``public``: ``avatars``, ``other.audit``; children are named
after their table: columns ``avatars.userId``, constraints ``avatars.avatars_pkey``,
triggers ``avatars.avatars_touch``; indexes and sequences by their own (qualified) name;
functions as ``name(identity arguments)``; grants by the relation they are on.

A snapshot holds nothing that differs between two databases built from the same SQL on
the same server version: no OIDs, no owners, no extension versions, no column order, no
sequence values. It is sorted and JSON-serializable, so it can be cached as JSON and
compared after ``json.loads(json.dumps(snapshot))``.

The queries live in shipshape/queries/catalog/*.sql (one per kind, never one per table),
in the style of djrobstep/schemainspect; in_scope.sql, put into each, alone decides which
schemas they cover. They run in one read-only transaction, or in a savepoint that is
rolled back when the caller already has a transaction open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import psycopg
from psycopg.rows import dict_row

from shipshape.db import query, statement

# Difference kinds in report order, and the snapshot section that holds each kind.
KINDS = ("table", "column", "index", "constraint", "sequence", "view", "extension", "enum",
         "function", "trigger", "grant")
SECTIONS = {
    "table": "tables", "column": "columns", "index": "indexes", "constraint": "constraints",
    "sequence": "sequences", "view": "views", "extension": "extensions", "enum": "enums",
    "function": "functions", "trigger": "triggers", "grant": "grants",
}

# Catalog functions (pg_get_indexdef, pg_get_viewdef, format_type, pg_get_expr, ...) print
# names qualified or not according to search_path. A fixed one makes their output depend
# on the schema alone, and keeps `public` objects unqualified, as the snapshot's names are.
SEARCH_PATH = "public"


def snapshot(conn: psycopg.Connection, schemas: Sequence[str] | None = None) -> dict:
    """A comparable, JSON-serializable description of the schemas in scope.

    ``schemas=None`` means every schema except pg_catalog, information_schema, pg_toast*,
    pg_temp* and ``shipshape`` (the tool's own bookkeeping). Objects that belong to an
    extension are left out; the extension is listed instead. Read-only: one query per kind.
    """
    if isinstance(schemas, str):
        schemas = [schemas]
    params = {"schemas": None if schemas is None else list(schemas)}
    top_level = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    rows: dict[str, list[dict]] = {}
    # force_rollback: a top-level transaction ends without a commit, and inside a caller's
    # transaction the savepoint is rolled back, which also undoes the search_path change.
    with conn.transaction(force_rollback=True), conn.cursor(row_factory=dict_row) as cur:
        if top_level:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur.execute("SELECT set_config('search_path', %s, true)", [SEARCH_PATH])
        for section in SECTIONS.values():
            rows[section] = cur.execute(catalog_query(section), params).fetchall()
    return _assemble(rows)


@cache
def catalog_query(section: str) -> str:
    """queries/catalog/<section>.sql, its {in_scope} replaced by the one condition that
    decides which schemas are in scope (queries/catalog/in_scope.sql)."""
    text = query(f"catalog/{section}")
    if text.count("{in_scope}") != 1:
        raise AssertionError(f"queries/catalog/{section}.sql must filter by {{in_scope}} once")
    return text.replace("{in_scope}", statement("catalog/in_scope"))


def _assemble(rows: dict[str, list[dict]]) -> dict:
    snap: dict[str, dict] = {section: {} for section in SECTIONS.values()}
    for r in rows["tables"]:
        snap["tables"][r["name"]] = {
            "kind": r["kind"],
            "unlogged": r["unlogged"],
            "row_security": r["row_security"],
            "partition_key": r["partition_key"],
            "partition_bound": r["partition_bound"],
            "inherits": list(r["inherits"]),
            "options": sorted(r["options"] or []),
        }
    for r in rows["columns"]:
        snap["columns"][f"{r['table_name']}.{r['name']}"] = {
            "table": r["table_name"],
            "type": r["type"],
            "nullable": r["nullable"],
            "default": r["default"],
            "identity": r["identity"],
            "generated": r["generated"],
            "collation": r["collation"],
        }
    for r in rows["indexes"]:
        snap["indexes"][r["name"]] = {
            "table": r["table_name"], "definition": r["definition"], "valid": r["valid"],
        }
    for r in rows["constraints"]:
        snap["constraints"][f"{r['table_name']}.{r['name']}"] = {
            "table": r["table_name"], "type": r["type"], "definition": r["definition"],
        }
    for r in rows["sequences"]:
        snap["sequences"][r["name"]] = {
            "type": r["type"],
            "start": int(r["start"]),
            "increment": int(r["increment"]),
            "minimum": int(r["minimum"]),
            "maximum": int(r["maximum"]),
            "cache": int(r["cache"]),
            "cycle": r["cycle"],
            # the owning column (serial, identity, OWNED BY), or None
            "table": r["table_name"],
            "column": r["column_name"],
        }
    for r in rows["views"]:
        snap["views"][r["name"]] = {
            "kind": r["kind"], "definition": r["definition"],
            "options": sorted(r["options"] or []),
        }
    for r in rows["extensions"]:
        snap["extensions"][r["name"]] = {"schema": r["schema"]}
    for r in rows["enums"]:
        snap["enums"][r["name"]] = {"labels": list(r["labels"])}
    for r in rows["functions"]:
        snap["functions"][r["name"]] = {"kind": r["kind"], "definition": r["definition"]}
    for r in rows["triggers"]:
        snap["triggers"][f"{r['table_name']}.{r['name']}"] = {
            "table": r["table_name"], "definition": r["definition"], "enabled": r["enabled"],
        }
    grants: dict[str, dict[str, list[str]]] = {}
    for r in rows["grants"]:
        grants.setdefault(r["name"], {}).setdefault(r["grantee"], []).append(r["privilege"])
    snap["grants"] = {
        relation: {grantee: sorted(privs) for grantee, privs in sorted(by_grantee.items())}
        for relation, by_grantee in grants.items()
    }
    # Sorted in Python, not by ORDER BY, so that the server's collation plays no part.
    return {section: dict(sorted(items.items())) for section, items in snap.items()}


@dataclass(frozen=True)
class Difference:
    """One object that is missing, unexpected or changed in ``actual`` versus ``expected``."""

    kind: str  # one of KINDS
    name: str
    change: str  # "missing" | "unexpected" | "changed"
    expected: object = None
    actual: object = None

    def describe(self) -> str:
        """One line for humans."""
        head = f"{self.kind} {self.name}"
        if self.change == "missing":
            summary = _summary(self.kind, self.expected)
            return f"{head} is missing" + (f" (expected {summary})" if summary else "")
        if self.change == "unexpected":
            summary = _summary(self.kind, self.actual)
            return f"{head} is unexpected" + (f" (found {summary})" if summary else "")
        return f"{head} changed: {_changes(self.kind, self.expected, self.actual)}"


def diff(expected: dict, actual: dict) -> list[Difference]:
    """What differs in ``actual`` from ``expected``, sorted by kind (KINDS order), then name.

    The children of a missing (or unexpected) table or view, and of a missing sequence,
    are folded into it: a dropped table is reported once, not with each of its columns,
    indexes, constraints, triggers, owned sequences and grants.
    """
    missing = _absent_relations(expected, actual)
    unexpected = _absent_relations(actual, expected)
    found: list[Difference] = []
    for kind in KINDS:
        section = SECTIONS[kind]
        want = expected.get(section) or {}
        have = actual.get(section) or {}
        for name in sorted(want.keys() | have.keys()):
            if name not in have:
                if _parent(kind, name, want[name]) not in missing:
                    found.append(Difference(kind, name, "missing", expected=want[name]))
            elif name not in want:
                if _parent(kind, name, have[name]) not in unexpected:
                    found.append(Difference(kind, name, "unexpected", actual=have[name]))
            elif want[name] != have[name]:
                found.append(Difference(kind, name, "changed", want[name], have[name]))
    return found


def _absent_relations(snap: dict, other: dict) -> set[str]:
    """Tables, views and sequences in ``snap`` that ``other`` lacks: their children fold."""
    absent = set()
    for section in ("tables", "views", "sequences"):
        mine, theirs = snap.get(section) or {}, other.get(section) or {}
        absent |= mine.keys() - theirs.keys()
    return absent


def _parent(kind: str, name: str, value: object) -> str | None:
    """The relation whose absence makes this object's absence implied, if any."""
    if kind == "grant":
        return name  # grants are keyed by the relation they are on
    if kind in ("column", "index", "constraint", "trigger", "sequence"):
        if isinstance(value, dict) and "table" in value:
            return value["table"]
        if kind != "sequence" and kind != "index" and "." in name:
            return name.rsplit(".", 1)[0]
    return None


# ---- describe() helpers -------------------------------------------------------------------

_LONG = 240  # longer definitions are shown around their first difference


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _short(text: str, start: int = 0) -> str:
    text = _one_line(text)
    if len(text) <= _LONG:
        return text
    begin = max(0, min(start - 40, len(text) - _LONG))
    return ("..." if begin else "") + text[begin:begin + _LONG] + (
        "..." if begin + _LONG < len(text) else "")


def _fmt(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return _short(str(value))


def _column_parts(value: dict, fields: Sequence[str]) -> list[str]:
    parts = []
    for field in fields:
        v = value.get(field)
        if field == "type":
            parts.append(str(v))
        elif field == "nullable":
            parts.append("nullable" if v else "not null")
        elif field == "default":
            parts.append(f"default {v}" if v is not None else "no default")
        elif field == "identity":
            parts.append(f"identity {v}" if v else "no identity")
        elif field == "generated":
            parts.append(f"generated as {v}" if v else "not generated")
        elif field == "collation":
            parts.append(f"collate {v}" if v else "default collation")
        else:
            parts.append(f"{field} {_fmt(v)}")
    return parts


def _summary(kind: str, value: object) -> str:
    """What an object is, briefly: for 'missing' and 'unexpected' lines."""
    if not isinstance(value, dict):
        return "" if value is None else _fmt(value)
    if kind == "column":
        fields = ["type", "nullable"] + [
            f for f in ("default", "identity", "generated", "collation") if value.get(f)]
        return ", ".join(_column_parts(value, fields))
    if kind in ("table", "view"):
        return "" if value.get("kind") in (None, kind) else str(value["kind"])
    if kind == "index":
        text = _short(value.get("definition", ""))
        return text if value.get("valid", True) else f"{text}, INVALID"
    if kind in ("constraint", "function"):
        return _short(value.get("definition", ""))
    if kind == "trigger":
        text = _short(value.get("definition", ""))
        state = value.get("enabled")
        return text if state in (None, "enabled") else f"{text}, {state}"
    if kind == "sequence":
        text = (f"{value.get('type')}, start {value.get('start')}, "
                f"increment {value.get('increment')}")
        if value.get("table"):
            text += f", owned by {value['table']}.{value.get('column')}"
        return text
    if kind == "extension":
        return f"in schema {value.get('schema')}"
    if kind == "enum":
        return ", ".join(repr(label) for label in value.get("labels", []))
    if kind == "grant":
        return "; ".join(f"{grantee}: {', '.join(privs)}" for grantee, privs in value.items())
    return _fmt(value)


def _changes(kind: str, expected: object, actual: object) -> str:
    """What changed, for 'changed' lines: only the attributes that differ."""
    if not (isinstance(expected, dict) and isinstance(actual, dict)):
        return f"expected {_fmt(expected)}, found {_fmt(actual)}"
    fields = [f for f in dict.fromkeys([*expected, *actual]) if expected.get(f) != actual.get(f)]
    if kind == "column":
        return (f"expected {' '.join(_column_parts(expected, fields))}, "
                f"found {' '.join(_column_parts(actual, fields))}")
    if fields == ["definition"]:
        want, have = _one_line(expected["definition"]), _one_line(actual["definition"])
        at = next((i for i, (a, b) in enumerate(zip(want, have, strict=False)) if a != b),
                  min(len(want), len(have)))
        text = f"expected {_short(want, at)}, found {_short(have, at)}"
        if kind == "constraint":
            notes = [f"no {clause}" for clause in ("ON DELETE", "ON UPDATE")
                     if clause in want and clause not in have]
            if notes:
                text += f" ({', '.join(notes)})"
        return text
    return "; ".join(
        f"{field} expected {_fmt(expected.get(field))}, found {_fmt(actual.get(field))}"
        for field in fields)
