"""What restore runs for one difference between the database and the shadow database
built from the migrations: the statements that rebuild it from the shadow's definition,
or why restore leaves it (for escalation).

Each statement carries its order: columns (0, generated ones 3) before defaults and NOT
NULL (1, 2), constraints (10-15), indexes (20, 21) and grants (30, 31), so that what needs
a column comes after it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from shipshape.ops.runbooks.steps.base import Context
from shipshape.ops.runbooks.steps.sqltext import statement

if TYPE_CHECKING:
    from collections.abc import Callable

    from psycopg import sql

    from shipshape.engine.catalog import Difference

Gone = tuple[str, str | None]  # a table (column None), or a column, that stays missing


class Statement(NamedTuple):
    order: int
    sql: str
    transactional: bool  # False: CREATE/DROP INDEX CONCURRENTLY, run outside a transaction


Built = tuple[list[Statement], str]  # the statements, or none and why restore leaves it

_CONSTRAINT_ORDER = {"PRIMARY KEY": 10, "UNIQUE": 11, "EXCLUDE": 12, "CHECK": 13, "FOREIGN KEY": 14}


def statements_for(ctx: Context, d: Difference, expected: dict) -> Built:
    """The statements that rebuild d, or why restore leaves it. expected: the shadow
    database's snapshot that d comes from."""
    build = _BUILDERS.get((d.kind, d.change))
    if build is not None:
        return build(ctx, d, expected)
    if d.change == "unexpected":
        return [], "no migration creates it: adopt it in a migration, or drop it in one"
    return [], "restore does not rebuild this kind of object: write a migration"


def stays_missing(d: Difference) -> set[Gone]:
    """The table or column that d leaves missing, when restore leaves d."""
    if d.change == "missing" and d.kind == "table":
        return {(d.name, None)}
    if d.change == "missing" and d.kind == "column":
        return {(d.expected["table"], d.name[len(d.expected["table"]) + 1:])}
    return set()


# --- what needs what --------------------------------------------------------------------------

def missing_dependency(d: Difference, gone: set[Gone]) -> str:
    """The table or column that stays missing which the object of d is built on, if any."""
    if not gone or d.change not in ("missing", "changed") or not isinstance(d.expected, dict):
        return ""
    built_on = _built_on(d)
    if built_on is None:
        return ""
    uses, ref_table = built_on
    for gone_table, column in sorted(gone, key=lambda g: (g[0], g[1] or "")):
        needed = _needed(gone_table, column, uses, ref_table)
        if needed:
            return needed
    return ""


def _needed(gone_table: str, column: str | None, uses: list[tuple[str | None, str]],
            ref_table: str | None) -> str:
    """`table T` or `column T.C` when the object needs this gone table or column, else ""."""
    if column is None:
        return f"table {gone_table}" if gone_table == ref_table else ""
    if any(gone_table == table and _mentions(text, column) for table, text in uses):
        return f"column {gone_table}.{column}"
    return ""


def _built_on(d: Difference) -> tuple[list[tuple[str | None, str]], str | None] | None:
    """What the object of d names: (table, catalog text) pairs, its own table's and, for a
    foreign key, the referenced table's; and the referenced table. None: a kind of object
    that needs no column."""
    table = d.expected.get("table")
    if d.kind == "column":
        return [(table, d.expected.get("generated") or "")], None
    if d.kind == "index":
        return [(table, d.expected["definition"].split(" USING ", 1)[-1])], None
    if d.kind != "constraint":
        return None
    own, _, rest = d.expected["definition"].partition(" REFERENCES ")
    ref = re.match(r"\s*(.+?)\((.*?)\)", rest) if rest else None
    if ref is None:
        return [(table, own)], None
    ref_table = ".".join(part.strip('"') for part in ref.group(1).split("."))
    return [(table, own), (ref_table, ref.group(2))], ref_table


def _mentions(text: str, name: str) -> bool:
    """Whether catalog text (pg_get_indexdef, pg_get_constraintdef, pg_get_expr) names the
    identifier `name`: quoted, or bare when it needs no quotes. Errs on the side of yes."""
    if '"' + name.replace('"', '""') + '"' in text:
        return True
    return bool(re.fullmatch(r"[a-z_][a-z0-9_$]*", name)) and re.search(
        rf'(?<![\w$"]){re.escape(name)}(?![\w$"])', text) is not None


# --- foreign keys that rows would violate ---------------------------------------------------

def violated(ctx: Context, d: Difference) -> str:
    """Why a missing or changed foreign key is left: rows of its table reference parent rows
    that do not exist (a parent table dropped, or re-created empty by an earlier step), so
    adding it would fail. "" when no row would be rejected, or d is no foreign key."""
    from psycopg import sql

    from shipshape.db import identifier

    if d.kind != "constraint" or not isinstance(d.expected, dict):
        return ""
    definition = d.expected["definition"]
    own = re.match(r"FOREIGN KEY \((.+?)\) REFERENCES (.+?)\((.+?)\)", definition)
    if own is None:
        return ""
    table = d.expected["table"]
    columns = [c.strip() for c in own.group(1).split(",")]
    ref_table = ".".join(part.strip('"') for part in own.group(2).strip().split("."))
    parts = {"table": identifier(table),
             "not_null": sql.SQL(" AND ").join(sql.SQL(f"c.{c} IS NOT NULL") for c in columns),
             "columns": sql.SQL(", ").join(sql.SQL(f"c.{c}") for c in columns)}
    with ctx.conn.transaction(force_rollback=True):
        exists = ctx.conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                  [ref_table]).fetchone()[0]
        recreated = ref_table in ctx.recreated.get("tables", {})
        if exists and not recreated:
            query = sql.SQL(statement("runbook/fk_orphans")).format(
                ref_table=identifier(ref_table),
                ref_columns=sql.SQL(", ").join(sql.SQL(f"r.{c.strip()}")
                                               for c in own.group(3).split(",")), **parts)
        else:
            query = sql.SQL(statement("runbook/fk_keyed_rows")).format(**parts)
        count = ctx.conn.execute(query).fetchone()[0]
    if not count:
        return ""
    return (f"{count} row(s) of {table} reference {ref_table} rows that do not exist, so "
            f"adding it would fail; nothing is deleted here: restore the parent rows first "
            f"(from a backup, or as placeholders: runbook data-integrity)")


# --- the statements, by kind of object --------------------------------------------------------

def _text(ctx: Context, template: str, **parts: sql.Composable) -> str:
    from psycopg import sql

    return sql.SQL(statement(template)).format(**parts).as_string(ctx.conn)


_TYPMOD = re.compile(r"\((\d+)\)$")


def _lossless(ctx: Context, have: str, want: str) -> bool:
    """Whether changing a column from type have back to want keeps every value: the
    server says the cast is binary coercible, and want's length limit, if any, is at
    least have's (text, varchar and varchar(20) hold every varchar(10))."""
    import psycopg

    from shipshape.db import query

    try:
        with ctx.conn.transaction():
            coercible = ctx.conn.execute(query("runbook/binary_coercible"),
                                         {"have": have, "want": want}).fetchone()[0]
    except psycopg.Error:  # a type name the server does not know as written
        return False
    if not coercible:
        return False
    have_limit, want_limit = _TYPMOD.search(have), _TYPMOD.search(want)
    if want_limit is None:
        return "(" not in want  # no limit at all; numeric(10,2) and the like: not compared
    return have_limit is not None and int(want_limit.group(1)) >= int(have_limit.group(1))


def _index(ctx: Context, d: Difference, expected: dict) -> Built:
    from psycopg import sql

    from shipshape.db import identifier

    concurrent = ctx.env.concurrent_indexes
    out = []
    if d.change == "changed":
        out.append(Statement(20, _text(ctx, "runbook/restore_index_drop",
                                       concurrently=sql.SQL("CONCURRENTLY " if concurrent else ""),
                                       name=identifier(d.name)), not concurrent))
    definition = d.expected["definition"]
    if concurrent:
        definition = re.sub(r"^CREATE (UNIQUE )?INDEX ", r"CREATE \1INDEX CONCURRENTLY ",
                            definition)
    out.append(Statement(21, definition, not concurrent))
    return out, ""


def _constraint(ctx: Context, d: Difference, expected: dict) -> Built:
    from psycopg import sql

    from shipshape.db import identifier

    table = d.expected["table"]
    name = d.name[len(table) + 1:]
    return [Statement(_CONSTRAINT_ORDER.get(d.expected["type"], 15), _text(
        ctx, "runbook/restore_constraint", table=identifier(table), name=sql.Identifier(name),
        definition=sql.SQL(d.expected["definition"])), True)], ""


def _changed_column(ctx: Context, d: Difference, expected: dict) -> Built:
    """A column's default and NOT NULL set back; any other change is left."""
    from psycopg import sql

    from shipshape.db import identifier

    want, have = d.expected, d.actual
    other = [k for k in ("type", "identity", "generated", "collation")
             if want.get(k) != have.get(k)]
    widen = other == ["type"] and _lossless(ctx, have["type"], want["type"])
    if other and not widen:
        return [], f"its {', '.join(other)} differs: changing it may rewrite or lose data"
    table = identifier(want["table"])
    column = sql.Identifier(d.name[len(want["table"]) + 1:])
    out = []
    if widen:
        out.append(Statement(1, _text(ctx, "runbook/restore_column_type", table=table,
                                      column=column, type=sql.SQL(want["type"])), True))
    if want["default"] != have["default"]:
        if want["default"] is None:
            out.append(Statement(1, _text(ctx, "runbook/restore_column_drop_default",
                                          table=table, column=column), True))
        else:
            out.append(Statement(1, _text(ctx, "runbook/restore_column_set_default", table=table,
                                          column=column, default=sql.SQL(want["default"])), True))
    if want["nullable"] != have["nullable"]:
        out.append(Statement(2, _text(ctx, "runbook/restore_column_not_null", table=table,
                                      column=column,
                                      action=sql.SQL("DROP" if want["nullable"] else "SET")), True))
    return out, ""


def _grant(ctx: Context, d: Difference, expected: dict) -> Built:
    """Each grantee's privileges revoked, then granted as the migrations grant them.

    Only for roles the migrations mention: a grant to any other role (a DBA's reporting
    role) is not theirs to take away, declared unmanaged or not; it is left, and said so."""
    from psycopg import sql

    from shipshape.db import identifier
    from shipshape.engine.boundary import mentioned_roles

    want_by, have_by = d.expected or {}, d.actual or {}
    mentioned = mentioned_roles(expected, ctx.env)
    out, foreign = [], []
    for grantee in sorted(set(want_by) | set(have_by)):
        want, have = want_by.get(grantee, []), have_by.get(grantee, [])
        if sorted(want) == sorted(have):
            continue
        if grantee not in mentioned:
            foreign.append(grantee)
            continue
        if any("GRANT OPTION" in p for p in want):
            return [], "it includes WITH GRANT OPTION"
        who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
        out.append(Statement(30, _text(ctx, "runbook/restore_revoke", table=identifier(d.name),
                                       grantee=who), True))
        if want:
            out.append(Statement(31, _text(ctx, "runbook/restore_grant", table=identifier(d.name),
                                           grantee=who, privileges=sql.SQL(", ").join(
                                               sql.SQL(p) for p in sorted(want))), True))
    if foreign:
        return out, (f"no migration grants anything to {', '.join(foreign)}: restore never "
                     f"revokes it; declare it in Pulumi.{ctx.env.name}.yaml "
                     f"(shipshape:unmanaged_roles) or revoke it yourself")
    return out, ""


def _missing_table(ctx: Context, d: Difference, expected: dict) -> Built:
    return [], ("restore does not create tables: reapply re-runs the migration that "
                "creates it when every table and column of that migration is missing; "
                "otherwise write a migration")


def _missing_column(ctx: Context, d: Difference, expected: dict) -> Built:
    """ALTER TABLE ... ADD COLUMN for a column missing from a table that exists, exactly as
    the shadow database has it; or why it is left: restore never invents a value for a row."""
    from psycopg import sql

    from shipshape.db import identifier

    column = d.expected
    table = column["table"]
    name = d.name[len(table) + 1:]
    why = _numbered(column, expected, table, name)
    if why:
        return [], why
    definition, why = _column_definition(ctx, column, table)
    if why:
        return [], why
    text = _text(ctx, "runbook/restore_column_add", table=identifier(table),
                 column=sql.Identifier(name), definition=definition)
    return [Statement(3 if column.get("generated") else 0, text, True)], ""


def _numbered(column: dict, expected: dict, table: str, name: str) -> str:
    """Why a column whose values come from a sequence is left: adding it back would
    number every row anew."""
    if column.get("identity"):
        return (f"an identity column (generated {column['identity']}): adding it back "
                f"numbers every row from a new sequence; write a migration")
    owned = [s for s, v in (expected.get("sequences") or {}).items()
             if v.get("table") == table and v.get("column") == name]
    if owned:
        return (f"its values come from sequence {owned[0]}, which it owns (serial) and "
                f"restore does not rebuild; write a migration")
    return ""


def _column_definition(ctx: Context, column: dict, table: str) -> tuple[sql.Composable, str]:
    """The column's type, collation, generated expression or default, and NOT NULL; or why
    it cannot be added back as it is."""
    from psycopg import sql

    parts = [sql.SQL(column["type"])]
    if column.get("collation"):
        collation = _collation(ctx, column["collation"])
        if collation is None:
            return sql.SQL(""), (f"its collation {column['collation']} does not exist in "
                                 f"this database")
        parts.append(sql.SQL("COLLATE {}").format(collation))
    if column.get("generated"):  # computed from the row: nothing is invented
        expression, _, stored = column["generated"].rpartition(" ")
        parts.append(sql.SQL("GENERATED ALWAYS AS ({}) {}").format(
            sql.SQL(expression), sql.SQL(stored)))
    elif column.get("default") is not None:  # each row gets it, as when the migration ran
        parts.append(sql.SQL("DEFAULT {}").format(sql.SQL(column["default"])))
    if not column["nullable"]:
        if column.get("default") is None and not column.get("generated") and _has_rows(ctx, table):
            return sql.SQL(""), (
                f"it is NOT NULL without a default and {table} has rows: adding it "
                f"back needs a value for each of them, and restore never invents "
                f"data; a reviewed migration must supply them")
        parts.append(sql.SQL("NOT NULL"))
    return sql.SQL(" ").join(parts), ""


def _collation(ctx: Context, name: str) -> sql.Identifier | None:
    """The collation a snapshot names (unqualified in pg_catalog and public), as an
    identifier, or None when this database has no such collation for its encoding."""
    from psycopg import sql

    with ctx.conn.transaction(force_rollback=True):
        row = ctx.conn.execute(statement("runbook/collation"), {"name": name}).fetchone()
    return sql.Identifier(*row) if row else None


def _has_rows(ctx: Context, table: str) -> bool:
    """Whether table has a row: read-only, within the env's timeouts. A table that an
    earlier step creates again (it is not there yet) has none."""
    import psycopg
    from psycopg import sql

    from shipshape import db

    query = sql.SQL(statement("runbook/table_has_rows")).format(table=db.identifier(table))

    def work():
        try:
            with ctx.conn.transaction(force_rollback=True):
                db.set_local_timeouts(ctx.conn, ctx.env)
                return ctx.conn.execute(query).fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return False

    return db.retry_on_lock_timeout(ctx.conn, ctx.env, work,
                                    what=f"Planning restore (whether {table} has rows)",
                                    then="run the runbook again; nothing was changed.")


_BUILDERS: dict[tuple[str, str], Callable[[Context, Difference, dict], Built]] = {
    ("index", "missing"): _index, ("index", "changed"): _index,
    ("constraint", "missing"): _constraint, ("constraint", "changed"): _constraint,
    ("column", "changed"): _changed_column,
    ("column", "missing"): _missing_column,
    ("grant", "missing"): _grant, ("grant", "changed"): _grant,
    ("table", "missing"): _missing_table,
}
