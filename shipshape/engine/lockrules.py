"""Which table locks a parsed statement takes, for the zero-downtime lock check.

A migration that waits for, or holds, a strong lock on a busy table stops the
application: every later query on that table queues behind it. What matters is the
lock mode and how long it is held: briefly (a catalog change) or for a time that grows
with the table (a scan to validate, or a rewrite). The table here follows PostgreSQL's
documentation of ALTER TABLE, CREATE INDEX and the explicit-locking chapter (the lock
level of each ALTER TABLE subcommand is decided by AlterTableGetLockLevel in
tablecmds.c), and the usual zero-downtime rules (as squawk documents them).

Only locks that block the application's reads or writes are listed: SHARE and stronger.
SHARE UPDATE EXCLUSIVE (VALIDATE CONSTRAINT, CREATE INDEX CONCURRENTLY, SET STATISTICS,
plain VACUUM, ATTACH PARTITION on the parent) blocks neither, so it is left out.

A relation created earlier in the same input is nobody else's yet, so its locks are
left out too: that is what makes a plain CREATE INDEX right after its CREATE TABLE safe.

The parser sees no catalog, so a few answers are the safe guess: an ALTER COLUMN TYPE
counts as a rewrite (a binary-coercible change such as varchar(10) to text would not
rewrite), SET NOT NULL counts as a scan (PostgreSQL 12+ skips it when a valid
CHECK (col IS NOT NULL) exists), and a DEFAULT that calls a function outside a short
list of known non-volatile ones counts as volatile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pglast import ast
from pglast.enums import AlterTableType as AT
from pglast.enums import ConstrType, ObjectType, ReindexObjectType
from pglast.keywords import RESERVED_KEYWORDS

ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
SHARE = "SHARE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"

# PostgreSQL's lock modes by the numbers of lockdefs.h (LOCK TABLE's LockStmt.mode).
MODES = {1: "ACCESS SHARE", 2: "ROW SHARE", 3: "ROW EXCLUSIVE", 4: SHARE_UPDATE_EXCLUSIVE,
         5: SHARE, 6: SHARE_ROW_EXCLUSIVE, 7: EXCLUSIVE, 8: ACCESS_EXCLUSIVE}
_RANK = {name: number for number, name in MODES.items()}

SAFE_REWRITES = {
    "brief-lock": (
        "The lock is held only for a catalog change, but while the statement waits for it "
        "every later query on the table queues behind it. Run it with a short lock_timeout "
        "and retry on timeout (shipshape does), and keep long transactions off the table."),
    "create-index-nonconcurrent": (
        "CREATE INDEX holds a SHARE lock, which blocks every write, for the whole build. Use "
        "CREATE INDEX CONCURRENTLY (outside a transaction: `-- shipshape:no-transaction`, or "
        "the create_index() macro with env.concurrent_indexes), and drop the INVALID index "
        "it leaves if the build fails."),
    "drop-index-nonconcurrent": (
        "DROP INDEX takes an ACCESS EXCLUSIVE lock on the index's table. Use DROP INDEX "
        "CONCURRENTLY (outside a transaction), or the drop_index() macro."),
    "reindex-nonconcurrent": (
        "REINDEX blocks writes to the table for the whole rebuild. Use REINDEX ... "
        "CONCURRENTLY (outside a transaction)."),
    "add-fk-validating": (
        "Adding a FOREIGN KEY checks every existing row while both tables are locked against "
        "writes. Add it as `ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID` (new rows are "
        "checked at once), then `ALTER TABLE ... VALIDATE CONSTRAINT ...` in a later "
        "statement or migration, which takes only SHARE UPDATE EXCLUSIVE."),
    "add-check-validating": (
        "Adding a CHECK constraint scans the table under ACCESS EXCLUSIVE. Add it as "
        "`ADD CONSTRAINT ... CHECK (...) NOT VALID`, then `VALIDATE CONSTRAINT` separately, "
        "which takes only SHARE UPDATE EXCLUSIVE."),
    "set-not-null": (
        "SET NOT NULL scans the table under ACCESS EXCLUSIVE. First `ADD CONSTRAINT c CHECK "
        "(col IS NOT NULL) NOT VALID`, then `VALIDATE CONSTRAINT c`; SET NOT NULL then uses "
        "the valid constraint instead of scanning (PostgreSQL 12+), and c can be dropped."),
    "change-column-type": (
        "Changing a column's type rewrites the table (and its indexes) under ACCESS EXCLUSIVE, "
        "unless the types are binary coercible. Add a new column of the new type, backfill it "
        "in batches, keep it in sync (trigger or application writes), switch reads over, and "
        "drop the old column in a later release."),
    "add-column-volatile-default": (
        "A column whose DEFAULT is volatile (random(), clock_timestamp(), gen_random_uuid(), "
        "a sequence as with serial or IDENTITY) is written into every row: a rewrite under "
        "ACCESS EXCLUSIVE. Add the column without a default (or with a constant one, which "
        "PostgreSQL 11+ stores without a rewrite), SET DEFAULT for new rows, and backfill "
        "existing rows in batches."),
    "add-column-generated": (
        "A STORED generated column is computed for every row: a rewrite under ACCESS "
        "EXCLUSIVE. Add a plain column, backfill it in batches, and fill it with a trigger, "
        "or compute it in queries or a view."),
    "set-generated-expression": (
        "SET EXPRESSION recomputes a stored generated column for every row: a rewrite under "
        "ACCESS EXCLUSIVE. Use a new column backfilled in batches instead."),
    "add-unique-constraint": (
        "ADD UNIQUE builds its index under ACCESS EXCLUSIVE. Build it first with "
        "`CREATE UNIQUE INDEX CONCURRENTLY i ...`, then `ADD CONSTRAINT c UNIQUE USING INDEX "
        "i`, which is only a catalog change."),
    "add-primary-key": (
        "ADD PRIMARY KEY builds its index (and checks NOT NULL) under ACCESS EXCLUSIVE. Build "
        "`CREATE UNIQUE INDEX CONCURRENTLY i ...` first, make the columns NOT NULL the safe way "
        "(see set-not-null), then `ADD CONSTRAINT c PRIMARY KEY USING INDEX i`."),
    "add-exclusion-constraint": (
        "ADD EXCLUDE builds its index under ACCESS EXCLUSIVE, and there is no USING INDEX "
        "form for exclusion constraints: do it in a maintenance window, or enforce the rule "
        "another way until then."),
    "alter-table-rewrite": (
        "SET LOGGED/UNLOGGED, SET TABLESPACE and SET ACCESS METHOD copy the whole table under "
        "ACCESS EXCLUSIVE. Do it in a maintenance window, or with an online tool such as "
        "pg_repack."),
    "attach-partition-validating": (
        "ATTACH PARTITION scans the new partition under ACCESS EXCLUSIVE to check its bound. "
        "First add a CHECK constraint matching the bound as NOT VALID, VALIDATE it, then "
        "attach: PostgreSQL skips the scan when such a constraint exists."),
    "vacuum-full": (
        "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE. Plain VACUUM takes no lock "
        "that blocks the application; to give space back online use pg_repack."),
    "cluster": (
        "CLUSTER rewrites the table under ACCESS EXCLUSIVE. Do it in a maintenance window, "
        "or use pg_repack, which can reorder rows online."),
    "refresh-matview-nonconcurrent": (
        "REFRESH MATERIALIZED VIEW blocks reads of the view while it recomputes. Use REFRESH "
        "MATERIALIZED VIEW CONCURRENTLY (the view needs a unique index)."),
    "explicit-lock": (
        "LOCK TABLE holds the lock until the transaction ends. Keep what follows it short, "
        "and set a lock_timeout so that waiting for the lock cannot stall the application."),
}


@dataclass(frozen=True)
class LockEffect:
    """A table lock a statement takes that blocks the application's reads or writes."""

    relation: str       # the table locked (for DROP INDEX: the index, its table is unknown)
    mode: str           # PostgreSQL's lock mode name, e.g. "ACCESS EXCLUSIVE"
    rewrites: bool      # rewrites the table: time grows with its size, under the lock
    scans: bool         # reads the whole table under the lock (validation, index build)
    rule: str           # stable id, a key of SAFE_REWRITES
    safe_rewrite: str   # how to get the same result without the long lock


def lock(relation: str, mode: str, rule: str, *, scans: bool = False,
         rewrites: bool = False) -> LockEffect:
    # A rewrite reads every row to write it again: it always scans too.
    return LockEffect(relation, mode, rewrites, scans or rewrites, rule, SAFE_REWRITES[rule])


# --- names ----------------------------------------------------------------------------

_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")


def quote_ident(name: str) -> str:
    """A name as it would be written: quoted only when it has to be ("a b", "userId")."""
    if _PLAIN.fullmatch(name) and name not in RESERVED_KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def dotted(*parts: str | None) -> str:
    return ".".join(quote_ident(p) for p in parts if p)


def relation_name(rangevar: ast.RangeVar) -> str:
    """schema.table as written (no schema is added when none was written)."""
    return dotted(rangevar.schemaname, rangevar.relname)


def object_name(obj) -> str:
    """The name of one of a DropStmt's (or RenameStmt's) objects, which the grammar gives
    as a String, a tuple of them, a TypeName or an ObjectWithArgs (functions)."""
    if isinstance(obj, ast.TypeName):
        obj = obj.names
    elif isinstance(obj, ast.ObjectWithArgs):
        obj = obj.objname
    parts = obj if isinstance(obj, tuple) else (obj,)
    return dotted(*(p.sval for p in parts if isinstance(p, ast.String)))


def _key(name: str) -> str:
    # "users" and "public.users" are the same table for the purpose of "created here".
    return name.removeprefix("public.")


def created_relations(node: ast.Node) -> set[str]:
    """The relations (tables, materialized views, indexes) a statement creates."""
    if isinstance(node, ast.CreateStmt):
        return {_key(relation_name(node.relation))}
    if isinstance(node, ast.CreateTableAsStmt) and node.into is not None:
        return {_key(relation_name(node.into.rel))}
    if isinstance(node, ast.IndexStmt) and node.idxname:
        return {_key(dotted(node.relation.schemaname, node.idxname))}
    return set()


# --- the table ------------------------------------------------------------------------

def lock_effects(node: ast.Node, new_relations: set[str] = frozenset()) -> list[LockEffect]:
    """The locks node takes that block the application, except on new_relations (those
    created earlier in the same input: nobody else uses them yet)."""
    handler = _HANDLERS.get(type(node))
    effects = handler(node) if handler else []
    kept = [e for e in effects if _key(e.relation) not in new_relations]
    return list(dict.fromkeys(kept))  # one per (relation, rule, ...), in order


def _index(node: ast.IndexStmt) -> list[LockEffect]:
    if node.concurrent:
        return []  # SHARE UPDATE EXCLUSIVE: reads and writes go on
    return [lock(relation_name(node.relation), SHARE, "create-index-nonconcurrent", scans=True)]


def _drop(node: ast.DropStmt) -> list[LockEffect]:
    kind = node.removeType
    if kind == ObjectType.OBJECT_INDEX:
        if node.concurrent:
            return []
        return [lock(object_name(o), ACCESS_EXCLUSIVE, "drop-index-nonconcurrent")
                for o in node.objects]
    if kind in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_MATVIEW,
                ObjectType.OBJECT_FOREIGN_TABLE, ObjectType.OBJECT_VIEW):
        return [lock(object_name(o), ACCESS_EXCLUSIVE, "brief-lock") for o in node.objects]
    return []




def _truncate(node: ast.TruncateStmt) -> list[LockEffect]:
    return [lock(relation_name(r), ACCESS_EXCLUSIVE, "brief-lock") for r in node.relations]


def _explicit(node: ast.LockStmt) -> list[LockEffect]:
    mode = MODES.get(node.mode, ACCESS_EXCLUSIVE)
    if _RANK[mode] < _RANK[SHARE]:
        return []
    return [lock(relation_name(r), mode, "explicit-lock") for r in node.relations]


def _vacuum(node: ast.VacuumStmt) -> list[LockEffect]:
    options = {o.defname for o in node.options or ()}
    if not node.is_vacuumcmd or "full" not in options:
        return []
    # VACUUM FULL with no table rewrites every table of the database: relation "".
    relations = [relation_name(r.relation) for r in node.rels or ()] or [""]
    return [lock(r, ACCESS_EXCLUSIVE, "vacuum-full", rewrites=True) for r in relations]


def _cluster(node: ast.ClusterStmt) -> list[LockEffect]:
    relation = relation_name(node.relation) if node.relation else ""
    return [lock(relation, ACCESS_EXCLUSIVE, "cluster", rewrites=True)]


def _reindex(node: ast.ReindexStmt) -> list[LockEffect]:
    if any(p.defname == "concurrently" for p in node.params or ()):
        return []
    if node.kind in (ReindexObjectType.REINDEX_OBJECT_INDEX,
                     ReindexObjectType.REINDEX_OBJECT_TABLE):
        relation = relation_name(node.relation)
    else:
        relation = node.name or ""
    return [lock(relation, SHARE, "reindex-nonconcurrent", scans=True)]


def _refresh(node: ast.RefreshMatViewStmt) -> list[LockEffect]:
    if node.concurrent:
        return []  # EXCLUSIVE: a materialized view takes no writes, and reads go on
    return [lock(relation_name(node.relation), ACCESS_EXCLUSIVE,
                 "refresh-matview-nonconcurrent", rewrites=True)]


def _trigger(node: ast.CreateTrigStmt) -> list[LockEffect]:
    return [lock(relation_name(node.relation), SHARE_ROW_EXCLUSIVE, "brief-lock")]


def _rename(node: ast.RenameStmt) -> list[LockEffect]:
    if node.relation is None or node.renameType == ObjectType.OBJECT_INDEX:
        return []  # renaming an index takes SHARE UPDATE EXCLUSIVE (PostgreSQL 12+)
    return [lock(relation_name(node.relation), ACCESS_EXCLUSIVE, "brief-lock")]


def _set_schema(node: ast.AlterObjectSchemaStmt) -> list[LockEffect]:
    if node.relation is None:
        return []
    return [lock(relation_name(node.relation), ACCESS_EXCLUSIVE, "brief-lock")]


def _create_table(node: ast.CreateStmt) -> list[LockEffect]:
    # The new table is empty, but its foreign keys add triggers to the referenced tables,
    # which takes SHARE ROW EXCLUSIVE on them: briefly, without a scan.
    return [lock(relation_name(c.pktable), SHARE_ROW_EXCLUSIVE, "brief-lock")
            for c in _constraints_of_table(node.tableElts or ())
            if c.contype == ConstrType.CONSTR_FOREIGN]


def _constraints_of_table(elements) -> list[ast.Constraint]:
    found = []
    for element in elements:
        if isinstance(element, ast.Constraint):
            found.append(element)
        elif isinstance(element, ast.ColumnDef):
            found.extend(element.constraints or ())
    return found


# --- ALTER TABLE ----------------------------------------------------------------------

# Subcommands that take only SHARE UPDATE EXCLUSIVE: they block no reads or writes.
_NON_BLOCKING = {
    AT.AT_SetStatistics, AT.AT_SetOptions, AT.AT_ResetOptions, AT.AT_ClusterOn,
    AT.AT_DropCluster, AT.AT_ValidateConstraint, AT.AT_DetachPartitionFinalize,
    AT.AT_SetRelOptions, AT.AT_ResetRelOptions,  # most storage parameters (fillfactor, ...)
}
# Subcommands that affect writes only: SHARE ROW EXCLUSIVE.
_TRIGGER_SWITCHES = {
    AT.AT_EnableTrig, AT.AT_EnableAlwaysTrig, AT.AT_EnableReplicaTrig, AT.AT_DisableTrig,
    AT.AT_EnableTrigAll, AT.AT_DisableTrigAll, AT.AT_EnableTrigUser, AT.AT_DisableTrigUser,
}
_REWRITES = {AT.AT_SetLogged, AT.AT_SetUnLogged, AT.AT_SetTableSpace, AT.AT_SetAccessMethod}
_ANALYSED = (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_MATVIEW, ObjectType.OBJECT_FOREIGN_TABLE)


def _alter_table(node: ast.AlterTableStmt) -> list[LockEffect]:
    """One lock is taken for the whole statement, the strongest its subcommands need, and
    every scan or rewrite happens under it: so each finding carries that mode."""
    if node.objtype not in _ANALYSED:
        return []
    table = relation_name(node.relation)
    needs = [need for cmd in node.cmds for need in _subcommand(cmd, table)]
    on_table = [n for n in needs if n.relation == table]
    if not on_table:
        return needs
    mode = max((n.mode for n in on_table), key=_RANK.__getitem__)
    specific = [n for n in on_table if n.rule != "brief-lock"]
    found = [lock(table, mode, n.rule, scans=n.scans, rewrites=n.rewrites) for n in specific]
    if not specific:
        found.append(lock(table, mode, "brief-lock"))
    return found + [n for n in needs if n.relation != table]


def _subcommand(cmd: ast.AlterTableCmd, table: str) -> list[LockEffect]:
    kind = cmd.subtype
    if kind in _NON_BLOCKING:
        return []
    if kind in _TRIGGER_SWITCHES:
        return [lock(table, SHARE_ROW_EXCLUSIVE, "brief-lock")]
    if kind == AT.AT_AddColumn:
        return _add_column(cmd.def_, table)
    if kind == AT.AT_AddConstraint:
        return _add_constraint(cmd.def_, table)
    if kind == AT.AT_SetNotNull:
        return [lock(table, ACCESS_EXCLUSIVE, "set-not-null", scans=True)]
    if kind == AT.AT_AlterColumnType:
        return [lock(table, ACCESS_EXCLUSIVE, "change-column-type", rewrites=True)]
    if kind == AT.AT_SetExpression:
        return [lock(table, ACCESS_EXCLUSIVE, "set-generated-expression", rewrites=True)]
    if kind in _REWRITES:
        return [lock(table, ACCESS_EXCLUSIVE, "alter-table-rewrite", rewrites=True)]
    if kind == AT.AT_AttachPartition:
        # The parent takes SHARE UPDATE EXCLUSIVE; the partition is scanned for its bound.
        partition = relation_name(cmd.def_.name)
        return [lock(partition, ACCESS_EXCLUSIVE, "attach-partition-validating", scans=True)]
    if kind == AT.AT_DetachPartition and cmd.def_.concurrent:
        return []
    # Everything else (DROP COLUMN, SET/DROP DEFAULT, DROP NOT NULL, DROP CONSTRAINT,
    # ADD ... USING INDEX, OWNER TO, ...) is a catalog change under ACCESS EXCLUSIVE.
    return [lock(table, ACCESS_EXCLUSIVE, "brief-lock")]


def _add_column(column: ast.ColumnDef, table: str) -> list[LockEffect]:
    found = [lock(table, ACCESS_EXCLUSIVE, "brief-lock")]
    type_name = column.typeName.names[-1].sval if column.typeName else ""
    if type_name in _SERIAL_TYPES:
        found.append(lock(table, ACCESS_EXCLUSIVE, "add-column-volatile-default",
                          rewrites=True))
    for constraint in column.constraints or ():
        found.extend(_column_constraint(constraint, table))
    return found


_SERIAL_TYPES = {"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"}


def _column_constraint(constraint: ast.Constraint, table: str) -> list[LockEffect]:
    kind = constraint.contype
    if kind == ConstrType.CONSTR_DEFAULT and is_volatile(constraint.raw_expr):
        return [lock(table, ACCESS_EXCLUSIVE, "add-column-volatile-default", rewrites=True)]
    if kind == ConstrType.CONSTR_IDENTITY:
        return [lock(table, ACCESS_EXCLUSIVE, "add-column-volatile-default", rewrites=True)]
    if kind == ConstrType.CONSTR_GENERATED and constraint.generated_kind == "s":
        return [lock(table, ACCESS_EXCLUSIVE, "add-column-generated", rewrites=True)]
    if kind in (ConstrType.CONSTR_CHECK, ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_UNIQUE,
                ConstrType.CONSTR_PRIMARY):
        return _add_constraint(constraint, table)
    return []


def _add_constraint(constraint: ast.Constraint, table: str) -> list[LockEffect]:
    kind = constraint.contype
    if kind == ConstrType.CONSTR_FOREIGN:
        # Triggers go on both tables: SHARE ROW EXCLUSIVE on each, and unless NOT VALID,
        # every existing row is checked against the referenced table while both are held.
        rule = "brief-lock" if constraint.skip_validation else "add-fk-validating"
        scans = not constraint.skip_validation
        return [lock(table, SHARE_ROW_EXCLUSIVE, rule, scans=scans),
                lock(relation_name(constraint.pktable), SHARE_ROW_EXCLUSIVE, rule,
                     scans=scans)]
    if kind == ConstrType.CONSTR_CHECK:
        if constraint.skip_validation:
            return [lock(table, ACCESS_EXCLUSIVE, "brief-lock")]
        return [lock(table, ACCESS_EXCLUSIVE, "add-check-validating", scans=True)]
    if kind == ConstrType.CONSTR_NOTNULL:
        return [lock(table, ACCESS_EXCLUSIVE, "set-not-null", scans=True)]
    if kind in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY):
        if constraint.indexname:  # USING INDEX: the index exists, a catalog change
            return [lock(table, ACCESS_EXCLUSIVE, "brief-lock")]
        rule = "add-primary-key" if kind == ConstrType.CONSTR_PRIMARY else "add-unique-constraint"
        return [lock(table, ACCESS_EXCLUSIVE, rule, scans=True)]
    if kind == ConstrType.CONSTR_EXCLUSION:
        return [lock(table, ACCESS_EXCLUSIVE, "add-exclusion-constraint", scans=True)]
    return [lock(table, ACCESS_EXCLUSIVE, "brief-lock")]


# Functions known not to be volatile, so a DEFAULT calling them is evaluated once and
# stored in the catalog (no rewrite, PostgreSQL 11+). Any other function counts as
# volatile: without the catalog, a user function could be.
_NON_VOLATILE = {
    "now", "transaction_timestamp", "statement_timestamp", "current_setting",
    "lower", "upper", "btrim", "trim", "concat", "length", "abs", "round",
    "to_json", "to_jsonb", "json_build_object", "jsonb_build_object", "json_build_array",
    "jsonb_build_array", "make_date", "make_interval", "make_timestamp", "make_timestamptz",
    "to_timestamp", "to_date", "date_trunc", "timezone", "array_fill",
}


def is_volatile(expression: ast.Node | None) -> bool:
    """Whether a DEFAULT expression may call a volatile function."""
    return any(isinstance(node, ast.FuncCall)
               and node.funcname[-1].sval.lower() not in _NON_VOLATILE
               for node in walk(expression))


def walk(node, prune: frozenset[tuple[type, str]] = frozenset()):
    """Every AST node under node (itself included), depth first, in order; never into
    the (node class, attribute) pairs of prune. With a stack, not recursion: nested
    generators cost each node once per level above it, and classifying a tree is this."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, ast.Node):
            yield item
            kind = type(item)
            stack.extend(reversed([child for attribute in item
                                   if (kind, attribute) not in prune
                                   and isinstance(child := getattr(item, attribute),
                                                  (ast.Node, tuple))]))
        elif isinstance(item, tuple):
            stack.extend(reversed(item))


_HANDLERS = {
    ast.IndexStmt: _index,
    ast.DropStmt: _drop,
    ast.TruncateStmt: _truncate,
    ast.LockStmt: _explicit,
    ast.VacuumStmt: _vacuum,
    ast.ClusterStmt: _cluster,
    ast.ReindexStmt: _reindex,
    ast.RefreshMatViewStmt: _refresh,
    ast.CreateTrigStmt: _trigger,
    ast.RenameStmt: _rename,
    ast.AlterObjectSchemaStmt: _set_schema,
    ast.CreateStmt: _create_table,
    ast.AlterTableStmt: _alter_table,
}
