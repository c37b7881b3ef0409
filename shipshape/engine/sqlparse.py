"""What a migration's SQL does, decided by PostgreSQL's own grammar.

Why a parser, not a regex: a regex sees words, not statements. It cannot tell a DROP
inside a string, a comment or a dollar-quoted body from a real one, and each way of
writing the same thing needs its own pattern: `ALTER TABLE t DROP "a b"` (no COLUMN
keyword, a quoted name), a DELETE inside a WITH, a DROP inside a DO block or inside an
EXECUTE'd string, a function that deletes and is called three statements later. pglast
embeds PostgreSQL's own parser (libpg_query; pglast 8 parses PostgreSQL 18's grammar), so
every statement here is split, located and read exactly as the server will read it, and
PL/pgSQL bodies are read by PostgreSQL's own PL/pgSQL parser.

Destructive: a statement that can lose data, so that a rollback cannot bring it back.
Each finding is an Effect(action, object):

- DROP TABLE, VIEW, MATERIALIZED VIEW, SCHEMA, SEQUENCE (its position), TYPE, DOMAIN,
  EXTENSION (its objects, including its configuration tables): "drop <kind>".
  A view holds no rows, but its definition is schema a rollback must recreate, and
  what the application reads through it is gone; so it counts (the old regex counted
  neither VIEW nor DOMAIN nor EXTENSION).
- Any DROP ... CASCADE, whatever it drops ("drop <kind> cascade"): CASCADE removes every
  dependent object, which can be a view, a column's default, a foreign key or, through a
  type or an extension, a whole column. Likewise ALTER TABLE ... DROP CONSTRAINT ... CASCADE
  and TRUNCATE ... CASCADE.
- DROP DATABASE, DROP OWNED BY ("drop owned": it drops every object the role owns).
- ALTER TABLE ... DROP COLUMN, and ALTER TYPE ... DROP ATTRIBUTE ("drop attribute").
- ALTER COLUMN ... TYPE, with or without USING ("change column type"): a narrowing or a
  USING expression can lose data; whether one did is for a runtime check to decide.
- TRUNCATE, DELETE (also inside a WITH, a rule or EXPLAIN ANALYZE), and MERGE with a
  WHEN ... THEN DELETE ("merge delete").
- Code: the SQL inside a DO block is classified statement by statement, and so is the
  body of a function or procedure in LANGUAGE plpgsql or sql. `EXECUTE 'constant'` is
  parsed and classified; EXECUTE of anything else (format(), concatenation with a
  variable, a variable) is Effect("unknown dynamic SQL", ""), and so is a DO block or
  function body in a language the grammar cannot read ("unknown code"): what we cannot
  read counts as destructive.
- A CREATE FUNCTION/PROCEDURE whose body is destructive is not destructive by itself
  (Statement.defines says what calling it can do); a later statement of the same input
  that calls it (SELECT f(), CALL p(), PERFORM f() in a DO block, a trigger that executes
  it) gets Effect("call destructive function", name). So does lo_unlink(), which
  deletes a large object; dblink_exec() runs SQL text elsewhere: unknown dynamic SQL.

Not destructive, by decision:

- UPDATE (and INSERT ... ON CONFLICT DO UPDATE). It overwrites values, but a backfill is
  how a schema change is completed, and the project treats it as a normal data change
  (its fix fill_null_source_type is an UPDATE and is not declared destructive). Flagging
  every UPDATE would make the declaration meaningless. A runtime guard that compares
  row counts, not this classifier, is the place for "this UPDATE went too far".
- DROP INDEX: an index holds no data; it is rebuilt from its table. It is a lock concern
  (see lockrules), not a data one. (DROP INDEX ... CASCADE is destructive, as any CASCADE.)
- DROP CONSTRAINT, DROP DEFAULT, DROP NOT NULL, DROP IDENTITY, DROP TRIGGER, DROP POLICY,
  DROP ROLE: they loosen rules or remove behaviour, not rows.
- DROP FUNCTION/PROCEDURE/ROUTINE/AGGREGATE without CASCADE: no rows are lost, but callers
  break. Like RENAME and SET SCHEMA, it is reported in Statement.contract: a change that
  breaks the running application's SQL (an expand/contract concern), not data.
- CREATE, ADD COLUMN, CREATE INDEX, GRANT/REVOKE, ALTER ROLE, COMMENT, SELECT, INSERT.

Locks: Statement.locks comes from lockrules (see there). Transactional: False for what
PostgreSQL refuses to run inside a transaction block (CREATE/DROP INDEX CONCURRENTLY,
REINDEX CONCURRENTLY, VACUUM, CREATE/DROP DATABASE and TABLESPACE, ALTER SYSTEM, ...), for
transaction control (BEGIN, COMMIT, and a DO block or a called procedure that commits),
and for ALTER TYPE ... ADD VALUE: PostgreSQL 12+ accepts it in a transaction, but the new
value cannot be used before that transaction commits, so it is run on its own.

Lines are 1-based lines of the input where a statement starts, also for statements
inside DO blocks, function bodies and EXECUTE'd strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from pglast import ast, parse_plpgsql, parse_sql
from pglast.enums import AlterTableType as AT
from pglast.enums import CmdType, DropBehavior, ObjectType, ReindexObjectType
from pglast.parser import ParseError, parse_sql_json, scan
from pglast.stream import RawStream

from shipshape.engine.lockrules import (
    LockEffect,
    created_relations,
    dotted,
    lock_effects,
    object_name,
    quote_ident,
    relation_name,
    walk,
)

__all__ = ["Effect", "LockEffect", "SQLSyntaxError", "Statement", "classify",
           "created_indexes", "destructive_effects", "destructive_lines", "split"]


@dataclass(frozen=True)
class Effect:
    """Something a statement does: for Statement.destructive, something that can lose data."""

    action: str     # "drop table", "drop column", "truncate", "delete rows", ...
    object: str     # "public.avatar_presets", 'users."a b"', or "" when unknown

    def __str__(self) -> str:
        return f"{self.action} {self.object}".strip()


@dataclass(frozen=True)
class Statement:
    text: str                               # the statement's SQL
    line: int                               # 1-based line in the input where it starts
    kind: str                               # pglast node name: "DropStmt", "DoStmt", ...
    destructive: tuple[Effect, ...] = ()    # what running it can lose
    locks: tuple[LockEffect, ...] = ()      # table locks that block the application
    transactional: bool = True              # may run inside a transaction block
    contract: tuple[Effect, ...] = ()       # breaks the running app's SQL, loses no data
    defines: tuple[Effect, ...] = ()        # CREATE FUNCTION/PROCEDURE: what calling it can do
    inner: tuple[Statement, ...] = ()       # the SQL inside a DO block or a function body


class SQLSyntaxError(ValueError):
    """The input is not valid PostgreSQL (or PL/pgSQL): the server would refuse it too."""

    def __init__(self, message: str, line: int):
        super().__init__(f"line {line}: {message}")
        self.message = message
        self.line = line


def classify(sql: str) -> list[Statement]:
    """Every top-level statement of sql, in order, with what it does."""
    return _classify_sql(sql, 1, _Context())


def split(sql: str) -> list[str]:
    """The text of each top-level statement of sql, in order, as the server splits it:
    from its first token (comments before it left out) to its end, without the `;`."""
    return [source.text for source in _split(sql, 1)]


def created_indexes(sql: str) -> list[str]:
    """The named indexes sql's top-level CREATE INDEX statements create, as names
    to_regclass reads (an index lives in its table's schema). An unnamed one is left
    out: PostgreSQL picks its name when it runs."""
    found = []
    for raw in json.loads(_tree(sql)).get("stmts", ()):
        index = raw["stmt"].get("IndexStmt")
        if index and index.get("idxname"):
            found.append(dotted(index["relation"].get("schemaname"), index["idxname"]))
    return found


def destructive_effects(sql: str) -> list[tuple[Statement, Effect]]:
    """Each destructive effect of sql, with the statement it comes from: the innermost
    one, so that a DROP inside a DO block is reported at its own line."""
    if not _may_destroy(_tree(sql)):
        return []
    return [(_origin(statement, effect), effect)
            for statement in classify(sql) for effect in statement.destructive]


def destructive_lines(sql: str) -> list[str]:
    """destructive_effects(sql) for a message: `line N: drop table public.x`, one each."""
    return [f"line {statement.line}: {effect}" for statement, effect in destructive_effects(sql)]


# The parse-tree nodes every destructive effect comes from (see the module docstring):
# a tree without any of them has none, and classify() need not build its objects (about
# 30 times the parse itself). DeleteStmt stands also for a DELETE in a WITH, a RULE or
# an EXPLAIN; CreateFunctionStmt for the functions a later call or trigger runs.
_MAY_DESTROY = frozenset({
    "DropStmt", "TruncateStmt", "DeleteStmt", "MergeStmt", "AlterTableStmt", "DropdbStmt",
    "DropOwnedStmt", "DoStmt", "CreateFunctionStmt",
})


def _tree(sql: str) -> str:
    """PostgreSQL's parse tree of sql, as the JSON libpg_query writes (no Python objects
    built: cheap). Invalid SQL raises SQLSyntaxError, located as classify() locates it."""
    try:
        return parse_sql_json(sql)
    except ParseError:
        _split(sql, 1)  # raises SQLSyntaxError at the character offset's line
        raise


def _may_destroy(tree: str) -> bool:
    """Whether the tree holds a node a destructive effect can come from, or names a
    built-in destructive function. Read on the tree's JSON: a node is the key `"Name":`,
    which no string of the SQL can spell there (JSON puts a backslash before every quote
    inside a string). A false alarm (a column named lo_unlink) only costs the full
    classification."""
    return (any(f'"{node}":' in tree for node in _MAY_DESTROY)
            or any(f'"sval":"{name}"' in tree for name in _BUILTIN_DESTRUCTIVE))


def _origin(statement: Statement, effect: Effect) -> Statement:
    if statement.kind == "DoStmt":  # a DO block's effects are those of its inner SQL
        for inner in statement.inner:
            if effect in inner.destructive:
                return _origin(inner, effect)
    return statement


# --- splitting and classifying --------------------------------------------------------

@dataclass
class _Context:
    """What earlier statements of the same input tell about later ones."""

    functions: dict[str, tuple[Effect, ...]] = field(default_factory=dict)  # destructive ones
    committing: set[str] = field(default_factory=set)  # procedures that COMMIT or ROLLBACK
    new_relations: set[str] = field(default_factory=set)  # created here: no lock concern

    def for_body(self) -> _Context:
        """A function body runs later, when called: what it creates does not exist yet."""
        return _Context(self.functions, self.committing, set(self.new_relations))


@dataclass(frozen=True)
class _Source:
    node: ast.Node
    text: str
    line: int
    start: int  # where text starts in the SQL it was split from

    def line_at(self, location: int) -> int:
        """The input line of an offset into the SQL this statement was split from."""
        return self.line + self.text.count("\n", 0, max(0, location - self.start))


def _classify_sql(sql: str, first_line: int, ctx: _Context) -> list[Statement]:
    return [_classify(source, ctx) for source in _split(sql, first_line)]


def _split(sql: str, first_line: int) -> list[_Source]:
    """The statements of sql. pglast gives character offsets (not libpg_query's bytes),
    and each statement starts at its first token, after any comment."""
    try:
        raws = parse_sql(sql)
    except ParseError as exc:
        message, location = exc.args[0], exc.args[1] or 0
        raise SQLSyntaxError(message, first_line + sql.count("\n", 0, location)) from None
    sources = []
    for raw in raws:
        start = raw.stmt_location
        end = start + raw.stmt_len if raw.stmt_len else len(sql)
        text = sql[start:end].rstrip()
        sources.append(_Source(raw.stmt, text, first_line + sql.count("\n", 0, start), start))
    return sources


def _classify(source: _Source, ctx: _Context) -> Statement:
    node = source.node
    body = _body(source, ctx)
    nodes = list(walk(node, _PRUNE))  # once: both of these read every node
    destructive = _effects(nodes) + _calls(nodes, ctx)
    locks = lock_effects(node, ctx.new_relations)
    transactional = _transactional(node, ctx)
    defines: tuple[Effect, ...] = ()
    if isinstance(node, ast.DoStmt):  # runs now: its inner SQL is what it does
        destructive += body.effects
        locks += [lock for inner in body.statements for lock in inner.locks]
        transactional = not body.commits and all(
            inner.transactional for inner in body.statements if inner.kind == "CallStmt")
    elif isinstance(node, ast.CreateFunctionStmt):  # runs when called
        defines = _unique(body.effects)
        _register(node, defines, body.commits, ctx)
    ctx.new_relations |= created_relations(node)
    return Statement(
        text=source.text, line=source.line, kind=type(node).__name__,
        destructive=_unique(destructive), locks=_unique(locks), transactional=transactional,
        contract=_unique(_contract(node)), defines=defines, inner=body.statements,
    )


def _unique(items) -> tuple:
    return tuple(dict.fromkeys(items))


# --- destructive forms ----------------------------------------------------------------

# A function's BEGIN ATOMIC body runs when the function is called, not when it is created.
_PRUNE = frozenset({(ast.CreateFunctionStmt, "sql_body")})


def _effects(nodes: list[ast.Node]) -> list[Effect]:
    """The destructive effects written in a statement itself, given its nodes (any depth:
    a DELETE in a WITH)."""
    found = []
    for inner in nodes:
        handler = _DESTRUCTIVE.get(type(inner))
        if handler:
            found.extend(handler(inner))
    return found


# DROP of these loses data (or schema a rollback must recreate) even without CASCADE.
_DATA_OBJECTS = {
    ObjectType.OBJECT_TABLE, ObjectType.OBJECT_VIEW, ObjectType.OBJECT_MATVIEW,
    ObjectType.OBJECT_SCHEMA, ObjectType.OBJECT_SEQUENCE, ObjectType.OBJECT_TYPE,
    ObjectType.OBJECT_DOMAIN, ObjectType.OBJECT_EXTENSION,
}
_ROUTINES = {ObjectType.OBJECT_FUNCTION, ObjectType.OBJECT_PROCEDURE,
             ObjectType.OBJECT_ROUTINE, ObjectType.OBJECT_AGGREGATE}
_KIND_WORDS = {
    ObjectType.OBJECT_MATVIEW: "materialized view", ObjectType.OBJECT_TABCONSTRAINT: "constraint",
    ObjectType.OBJECT_FDW: "foreign data wrapper", ObjectType.OBJECT_FOREIGN_SERVER: "server",
    ObjectType.OBJECT_STATISTIC_EXT: "statistics", ObjectType.OBJECT_LARGEOBJECT: "large object",
}


def _kind_words(kind: ObjectType) -> str:
    """OBJECT_MATERIALIZED... as SQL says it: "materialized view", "foreign table"."""
    return _KIND_WORDS.get(kind) or kind.name.removeprefix("OBJECT_").lower().replace("_", " ")


def _cascades(node) -> bool:
    return node.behavior == DropBehavior.DROP_CASCADE


def _drop(node: ast.DropStmt) -> list[Effect]:
    cascade = _cascades(node)
    if node.removeType not in _DATA_OBJECTS and not cascade:
        return []
    action = f"drop {_kind_words(node.removeType)}" + (" cascade" if cascade else "")
    return [Effect(action, object_name(obj)) for obj in node.objects]


def _truncate(node: ast.TruncateStmt) -> list[Effect]:
    action = "truncate cascade" if _cascades(node) else "truncate"
    return [Effect(action, relation_name(r)) for r in node.relations]


def _delete(node: ast.DeleteStmt) -> list[Effect]:
    return [Effect("delete rows", relation_name(node.relation))]


def _merge(node: ast.MergeStmt) -> list[Effect]:
    # WHEN MATCHED ... THEN DELETE, and WHEN NOT MATCHED BY SOURCE ... THEN DELETE.
    if any(c.commandType == CmdType.CMD_DELETE for c in node.mergeWhenClauses or ()):
        return [Effect("merge delete", relation_name(node.relation))]
    return []


def _alter_table(node: ast.AlterTableStmt) -> list[Effect]:
    noun = "attribute" if node.objtype == ObjectType.OBJECT_TYPE else "column"
    found = []
    for cmd in node.cmds:
        suffix = " cascade" if _cascades(cmd) else ""
        target = dotted(node.relation.schemaname, node.relation.relname, cmd.name)
        if cmd.subtype == AT.AT_DropColumn:
            found.append(Effect(f"drop {noun}{suffix}", target))
        elif cmd.subtype == AT.AT_AlterColumnType:
            found.append(Effect(f"change {noun} type{suffix}", target))
        elif cmd.subtype == AT.AT_DropConstraint and suffix:
            found.append(Effect("drop constraint cascade", target))
    return found


def _drop_database(node: ast.DropdbStmt) -> list[Effect]:
    return [Effect("drop database", quote_ident(node.dbname))]


def _drop_owned(node: ast.DropOwnedStmt) -> list[Effect]:
    roles = ", ".join(_role_name(r) for r in node.roles)
    return [Effect("drop owned cascade" if _cascades(node) else "drop owned", roles)]


def _role_name(role: ast.RoleSpec) -> str:
    if role.rolename:
        return quote_ident(role.rolename)
    return role.roletype.name.removeprefix("ROLESPEC_").lower()  # current_user, ...


_DESTRUCTIVE = {
    ast.DropStmt: _drop,
    ast.TruncateStmt: _truncate,
    ast.DeleteStmt: _delete,
    ast.MergeStmt: _merge,
    ast.AlterTableStmt: _alter_table,
    ast.DropdbStmt: _drop_database,
    ast.DropOwnedStmt: _drop_owned,
}


def _contract(node: ast.Node) -> list[Effect]:
    """Changes that lose no data but break SQL written against the old schema."""
    if isinstance(node, ast.RenameStmt):
        if node.relation is not None:
            target = dotted(node.relation.schemaname, node.relation.relname, node.subname)
        elif node.object is not None:
            target = object_name(node.object)
        else:
            target = quote_ident(node.subname or "")
        return [Effect(f"rename {_kind_words(node.renameType)}", target)]
    if isinstance(node, ast.AlterObjectSchemaStmt):
        target = relation_name(node.relation) if node.relation else object_name(node.object)
        return [Effect("set schema", target)]
    if isinstance(node, ast.DropStmt) and node.removeType in _ROUTINES and not _cascades(node):
        return [Effect(f"drop {_kind_words(node.removeType)}", object_name(o))
                for o in node.objects]
    return []


# --- functions: definitions and calls -------------------------------------------------

def _register(node: ast.CreateFunctionStmt, defines: tuple[Effect, ...], commits: bool,
              ctx: _Context) -> None:
    # By unqualified name: a call is matched however it is qualified. Never forgotten,
    # not even by CREATE OR REPLACE with a harmless body: an overload may remain.
    name = node.funcname[-1].sval
    if defines:
        ctx.functions[name] = defines
    if commits:
        ctx.committing.add(name)


# Built-in functions whose effect no grammar can see: lo_unlink deletes a large object;
# dblink_exec runs SQL text on another connection.
_BUILTIN_DESTRUCTIVE = {
    "lo_unlink": Effect("call destructive function", "lo_unlink"),
    "dblink_exec": Effect("unknown dynamic SQL", "dblink_exec"),
}


def _calls(nodes: list[ast.Node], ctx: _Context) -> list[Effect]:
    """Calls of a destructive function defined earlier in the input (or built in), given
    a statement's nodes. A trigger counts: the function will run on every write it fires
    for."""
    found = []
    for inner in nodes:
        if isinstance(inner, (ast.FuncCall, ast.CreateTrigStmt, ast.CreateEventTrigStmt)):
            parts = [p.sval for p in inner.funcname]
            if parts[-1] in ctx.functions:
                found.append(Effect("call destructive function", dotted(*parts)))
            elif parts[-1] in _BUILTIN_DESTRUCTIVE:
                found.append(_BUILTIN_DESTRUCTIVE[parts[-1]])
    return found


def _transactional(node: ast.Node, ctx: _Context) -> bool:
    if isinstance(node, (ast.IndexStmt, ast.DropStmt)):
        return not node.concurrent
    if isinstance(node, ast.ReindexStmt):
        concurrently = any(p.defname == "concurrently" for p in node.params or ())
        everything = node.kind in (ReindexObjectType.REINDEX_OBJECT_SYSTEM,
                                   ReindexObjectType.REINDEX_OBJECT_DATABASE)
        return not (concurrently or everything)
    if isinstance(node, ast.VacuumStmt):
        return not node.is_vacuumcmd  # ANALYZE alone may run in a transaction
    if isinstance(node, ast.AlterEnumStmt):
        return not (node.newVal and not node.oldVal)  # ADD VALUE (see the docstring)
    if isinstance(node, ast.AlterDatabaseStmt):
        return not any(o.defname == "tablespace" for o in node.options or ())
    if isinstance(node, ast.AlterTableStmt):
        return not any(c.subtype == AT.AT_DetachPartition and c.def_.concurrent
                       for c in node.cmds)
    if isinstance(node, ast.CallStmt):
        return node.funccall.funcname[-1].sval not in ctx.committing
    return type(node) not in _NEVER_IN_TRANSACTION


_NEVER_IN_TRANSACTION = {
    ast.CreatedbStmt, ast.DropdbStmt, ast.CreateTableSpaceStmt, ast.DropTableSpaceStmt,
    ast.AlterSystemStmt, ast.CreateSubscriptionStmt, ast.DropSubscriptionStmt,
    ast.TransactionStmt,  # BEGIN/COMMIT: the statement itself takes over the transaction
}


# --- code inside statements: DO blocks and function bodies ----------------------------

@dataclass(frozen=True)
class _Body:
    statements: tuple[Statement, ...] = ()
    unknown: tuple[Effect, ...] = ()  # code the grammar cannot read
    commits: bool = False             # COMMIT or ROLLBACK inside

    @property
    def effects(self) -> tuple[Effect, ...]:
        return _unique([*self.unknown,
                        *(e for inner in self.statements for e in inner.destructive)])


def _body(source: _Source, ctx: _Context) -> _Body:
    node = source.node
    if isinstance(node, ast.DoStmt):
        return _code(source, _options(node.args), "plpgsql", ctx)
    if isinstance(node, ast.CreateFunctionStmt):
        if node.sql_body is not None:  # BEGIN ATOMIC ... END, or RETURN expr: parsed already
            return _Body(statements=tuple(_classify_nodes(node.sql_body, source.line,
                                                          ctx.for_body())))
        return _code(source, _options(node.options), "sql", ctx.for_body())
    return _Body()


def _options(elements) -> dict[str, ast.DefElem]:
    return {e.defname: e for e in elements or ()}


def _code(source: _Source, options: dict[str, ast.DefElem], default: str,
          ctx: _Context) -> _Body:
    """The body of a DO block or a function, in the language its options name."""
    language = options["language"].arg.sval.lower() if "language" in options else default
    if language in ("c", "internal"):
        return _Body()  # names compiled code: a binding, not a body to read
    if language not in ("plpgsql", "sql"):
        return _Body(unknown=(Effect("unknown code", language),))
    body = options.get("as")
    if body is None:
        return _Body()
    # The body's first line is the line of its opening quote (arg_location, pglast 8).
    body_line = source.line_at(getattr(body, "arg_location", None) or source.start)
    if language == "plpgsql":
        return _plpgsql(source, body_line, ctx)
    text = body.arg[0].sval if isinstance(body.arg, tuple) else body.arg.sval
    return _Body(statements=tuple(_classify_sql(text, body_line, ctx)))


def _classify_nodes(body, line: int, ctx: _Context) -> list[Statement]:
    """A BEGIN ATOMIC body: statements parsed with their function, without text of
    their own; the text is printed back from the tree."""
    if isinstance(body, tuple):
        return [s for item in body for s in _classify_nodes(item, line, ctx)]
    return [_classify(_Source(body, RawStream()(body), line, 0), ctx)]


# PL/pgSQL statements whose expression is a string of SQL to run (dynamic SQL).
_DYNAMIC = {
    ("PLpgSQL_stmt_dynexecute", "query"), ("PLpgSQL_stmt_dynfors", "query"),
    ("PLpgSQL_stmt_open", "dynquery"), ("PLpgSQL_stmt_return_query", "dynquery"),
}
_TRANSACTION_CONTROL = {"PLpgSQL_stmt_commit", "PLpgSQL_stmt_rollback"}
_SQL_STATEMENT = 0  # PLpgSQL_expr.parseMode: RAW_PARSE_DEFAULT, a whole statement
_ASSIGNMENTS = {3, 4, 5}  # RAW_PARSE_PLPGSQL_ASSIGN1..3: "target := expression"


def _plpgsql(source: _Source, body_line: int, ctx: _Context) -> _Body:
    """PostgreSQL's PL/pgSQL parser reads the body; every SQL statement and expression in
    it is then classified like top-level SQL, at its own line."""
    try:
        tree = parse_plpgsql(source.text)
    except ParseError as exc:
        location = exc.args[1] if len(exc.args) > 1 else None
        line = source.line if location is None else source.line_at(source.start + location)
        raise SQLSyntaxError(f"PL/pgSQL: {exc.args[0]}", line) from None
    statements = []
    for lineno, expression, dynamic in _pl_expressions(tree):
        line = body_line + lineno - 1
        if dynamic:
            statements.extend(_dynamic(expression["query"], dynamic, line, ctx))
        elif expression.get("parseMode", _SQL_STATEMENT) == _SQL_STATEMENT:
            statements.extend(_classify_sql(expression["query"], line, ctx))
        else:
            statements.extend(_expression(expression, line, ctx))
    commits = any(kind in _TRANSACTION_CONTROL for kind in _pl_kinds(tree))
    return _Body(statements=tuple(statements), commits=commits)


def _pl_expressions(tree, lineno: int = 1, dynamic: str = ""):
    """(line in the body, PLpgSQL_expr, the kind of statement that EXECUTEs it or "")
    for every expression of a parse_plpgsql tree. A node is {kind: {field: value}}."""
    if isinstance(tree, list):
        for item in tree:
            yield from _pl_expressions(item, lineno)
    elif isinstance(tree, dict):
        for kind, fields in tree.items():
            if kind == "PLpgSQL_expr":
                yield lineno, fields, dynamic
            elif isinstance(fields, dict):
                here = fields.get("lineno", lineno)
                for name, value in fields.items():
                    yield from _pl_expressions(value, here,
                                               kind if (kind, name) in _DYNAMIC else "")
            elif isinstance(fields, list):
                yield from _pl_expressions(fields, lineno)


def _pl_kinds(tree):
    if isinstance(tree, list):
        for item in tree:
            yield from _pl_kinds(item)
    elif isinstance(tree, dict):
        for kind, fields in tree.items():
            yield kind
            yield from _pl_kinds(fields)


def _expression(expression: dict, line: int, ctx: _Context) -> list[Statement]:
    """A PL/pgSQL expression (IF f(), x := f(), RAISE ... f()). PL/pgSQL parses it as the
    target list of a SELECT, and so do we; it matters only when it calls a destructive
    function, so only then is it kept."""
    query = expression["query"]
    value = _assigned_value(query) if expression.get("parseMode") in _ASSIGNMENTS else query
    statements = _classify_sql("SELECT " + value, line, ctx)
    return [replace(s, text=query) for s in statements if s.destructive]


def _assigned_value(assignment: str) -> str:
    """The expression of "target := expression" (or "target = expression")."""
    for token in scan(assignment):
        if token.name in ("COLON_EQUALS", "ASCII_61"):
            return assignment[token.end + 1:]
    return assignment


def _dynamic(query: str, kind: str, line: int, ctx: _Context) -> list[Statement]:
    """EXECUTE 'constant SQL' is classified like any SQL; anything else is unknown."""
    sql = _constant_string(query)
    if sql is None:
        unknown = (Effect("unknown dynamic SQL", ""),)
        return [Statement(text=query, line=line, kind=kind, destructive=unknown)]
    return _classify_sql(sql, line, ctx)


def _constant_string(expression: str) -> str | None:
    """The value of an expression made only of string constants ('a', 'a' || 'b',
    'a'::text), else None."""
    try:
        raws = parse_sql("SELECT " + expression)
    except ParseError:
        return None
    select = raws[0].stmt if len(raws) == 1 else None
    if (not isinstance(select, ast.SelectStmt) or select.fromClause
            or len(select.targetList or ()) != 1):
        return None
    return _fold(select.targetList[0].val)


def _fold(node) -> str | None:
    if isinstance(node, ast.A_Const) and isinstance(node.val, ast.String):
        return node.val.sval
    if isinstance(node, ast.TypeCast):
        return _fold(node.arg)
    if isinstance(node, ast.A_Expr) and [n.sval for n in node.name] == ["||"]:
        left, right = _fold(node.lexpr), _fold(node.rexpr)
        return None if left is None or right is None else left + right
    return None
