"""The SQL classifier: what PostgreSQL's grammar says a statement does.

Every expected Effect here is written from the SQL by hand, never copied from output.
"""

from pathlib import Path

import pytest

from shipshape.engine.render import Renderer, directives
from shipshape.engine.sqlparse import (
    Effect,
    SQLSyntaxError,
    Statement,
    classify,
    destructive_effects,
)
from shipshape.settings import load_environment

ROOT = Path(__file__).resolve().parents[2]


def effects(sql: str) -> list[Effect]:
    return [effect for statement in classify(sql) for effect in statement.destructive]


def only(sql: str) -> Statement:
    [statement] = classify(sql)
    return statement


# --- destructive forms ----------------------------------------------------------------

DESTRUCTIVE = [
    ("DROP TABLE users", [Effect("drop table", "users")]),
    ("DROP TABLE IF EXISTS public.avatar_presets, persona_examples",
     [Effect("drop table", "public.avatar_presets"), Effect("drop table", "persona_examples")]),
    ('DROP TABLE "Avatar Presets"', [Effect("drop table", '"Avatar Presets"')]),
    ("DROP TABLE users CASCADE", [Effect("drop table cascade", "users")]),
    ("DROP VIEW active_users", [Effect("drop view", "active_users")]),
    ("DROP MATERIALIZED VIEW stats.daily", [Effect("drop materialized view", "stats.daily")]),
    ("DROP SCHEMA archive", [Effect("drop schema", "archive")]),
    ("DROP SCHEMA archive CASCADE", [Effect("drop schema cascade", "archive")]),
    ("DROP SEQUENCE order_numbers", [Effect("drop sequence", "order_numbers")]),
    ("DROP TYPE mood", [Effect("drop type", "mood")]),
    ("DROP DOMAIN email_address", [Effect("drop domain", "email_address")]),
    ("DROP EXTENSION pg_trgm", [Effect("drop extension", "pg_trgm")]),
    ("DROP EXTENSION postgis CASCADE", [Effect("drop extension cascade", "postgis")]),
    # CASCADE turns any drop destructive: dependents can be columns, views, tables.
    ("DROP FUNCTION touch() CASCADE", [Effect("drop function cascade", "touch")]),
    ("DROP INDEX users_email_idx CASCADE", [Effect("drop index cascade", "users_email_idx")]),
    ("DROP OWNED BY old_app", [Effect("drop owned", "old_app")]),
    ("DROP OWNED BY old_app, other CASCADE", [Effect("drop owned cascade", "old_app, other")]),
    ("DROP DATABASE avatar_creator", [Effect("drop database", "avatar_creator")]),
    ("ALTER TABLE users DROP COLUMN name", [Effect("drop column", "users.name")]),
    ("ALTER TABLE users DROP name", [Effect("drop column", "users.name")]),
    ('ALTER TABLE users DROP COLUMN "a b"', [Effect("drop column", 'users."a b"')]),
    ('ALTER TABLE users DROP "a b"', [Effect("drop column", 'users."a b"')]),
    ('ALTER TABLE public.avatars DROP COLUMN IF EXISTS "personaName"',
     [Effect("drop column", 'public.avatars."personaName"')]),
    ("ALTER TABLE users DROP COLUMN name CASCADE", [Effect("drop column cascade", "users.name")]),
    ("ALTER TABLE users DROP CONSTRAINT users_pkey CASCADE",
     [Effect("drop constraint cascade", "users.users_pkey")]),
    ("ALTER TABLE users ALTER COLUMN credits TYPE bigint",
     [Effect("change column type", "users.credits")]),
    ("ALTER TABLE users ALTER credits SET DATA TYPE smallint",
     [Effect("change column type", "users.credits")]),
    ("ALTER TABLE users ALTER COLUMN credits TYPE text USING credits::text",
     [Effect("change column type", "users.credits")]),
    ("ALTER TABLE users ADD COLUMN nick text, DROP COLUMN name, ALTER age TYPE int",
     [Effect("drop column", "users.name"), Effect("change column type", "users.age")]),
    ("ALTER TYPE address DROP ATTRIBUTE zip", [Effect("drop attribute", "address.zip")]),
    ("TRUNCATE sessions", [Effect("truncate", "sessions")]),
    ("TRUNCATE TABLE a, b RESTART IDENTITY", [Effect("truncate", "a"), Effect("truncate", "b")]),
    ("TRUNCATE users CASCADE", [Effect("truncate cascade", "users")]),
    ("DELETE FROM avatars WHERE id = 1", [Effect("delete rows", "avatars")]),
    ("DELETE FROM avatars a USING avatar_projects p WHERE a.\"projectId\" = p.id",
     [Effect("delete rows", "avatars")]),
    ("WITH gone AS (DELETE FROM sessions RETURNING id) SELECT count(*) FROM gone",
     [Effect("delete rows", "sessions")]),
    (("INSERT INTO archive SELECT * FROM (WITH d AS (DELETE FROM live RETURNING *) "
     "SELECT * FROM d) x"), [Effect("delete rows", "live")]),
    ("EXPLAIN ANALYZE DELETE FROM sessions", [Effect("delete rows", "sessions")]),
    (("MERGE INTO stock s USING delivery d ON s.item = d.item "
     "WHEN MATCHED AND s.qty = 0 THEN DELETE "
     "WHEN MATCHED THEN UPDATE SET qty = s.qty + d.qty "
     "WHEN NOT MATCHED THEN INSERT VALUES (d.item, d.qty)"),
     [Effect("merge delete", "stock")]),
    (("MERGE INTO stock s USING delivery d ON s.item = d.item "
     "WHEN NOT MATCHED BY SOURCE THEN DELETE"), [Effect("merge delete", "stock")]),
]


@pytest.mark.parametrize("sql,expected", DESTRUCTIVE, ids=[s for s, _ in DESTRUCTIVE])
def test_destructive_forms(sql, expected):
    assert effects(sql) == expected


NOT_DESTRUCTIVE = [
    "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL DEFAULT 'x')",
    "CREATE TABLE t2 AS SELECT * FROM t",
    "ALTER TABLE users ADD COLUMN nick text",
    "ALTER TABLE users ADD COLUMN score int NOT NULL DEFAULT 0",
    "CREATE INDEX users_name_idx ON users (name)",
    "CREATE UNIQUE INDEX CONCURRENTLY users_email_idx ON users (email)",
    "DROP INDEX users_name_idx",
    "DROP INDEX CONCURRENTLY IF EXISTS \"avatars_userId_idx\"",
    "ALTER TABLE users DROP CONSTRAINT users_email_key",
    "ALTER TABLE users ALTER COLUMN name DROP DEFAULT",
    "ALTER TABLE users ALTER COLUMN name DROP NOT NULL",
    "ALTER TABLE users ALTER COLUMN name SET DEFAULT 'anon'",
    "ALTER TABLE users ALTER COLUMN id DROP IDENTITY IF EXISTS",
    "ALTER TABLE users ADD CONSTRAINT c CHECK (credits >= 0) NOT VALID",
    "ALTER TABLE users VALIDATE CONSTRAINT c",
    "INSERT INTO users (email) VALUES ('a@b') ON CONFLICT (email) DO UPDATE SET name = 'x'",
    "INSERT INTO users (email) VALUES ('a@b') ON CONFLICT DO NOTHING",
    # UPDATE: a backfill is a normal data change (see the module docstring).
    "UPDATE avatars SET \"sourceType\" = 'uploaded' WHERE \"sourceType\" IS NULL",
    "UPDATE users SET name = NULL",
    "GRANT SELECT, INSERT ON users TO avatar_app",
    "REVOKE ALL ON users FROM avatar_app",
    "ALTER ROLE avatar_app NOLOGIN",
    "CREATE ROLE avatar_app NOLOGIN",
    "DROP ROLE IF EXISTS avatar_app",
    "COMMENT ON TABLE users IS 'DROP TABLE users; accounts'",
    "SELECT 'DROP TABLE users; DELETE FROM x' AS not_sql",
    "SELECT $tag$ TRUNCATE users $tag$",
    "-- DROP TABLE users;\nSELECT 1",
    "/* DELETE FROM users; /* nested */ TRUNCATE x; */ SELECT 1",
    "DROP TRIGGER touch_users ON users",
    "DROP POLICY own_rows ON avatars",
    "DROP FUNCTION IF EXISTS touch()",
    "DROP PROCEDURE cleanup(int)",
    "ALTER TABLE users RENAME COLUMN name TO full_name",
    "ALTER TABLE users RENAME TO accounts",
    "CREATE VIEW v AS SELECT * FROM users",
    "VACUUM ANALYZE users",
    "ALTER TYPE mood ADD VALUE 'meh'",
]


@pytest.mark.parametrize("sql", NOT_DESTRUCTIVE)
def test_non_destructive_forms(sql):
    assert effects(sql) == []


CONTRACT = [
    ("ALTER TABLE users RENAME COLUMN name TO full_name",
     [Effect("rename column", "users.name")]),
    ("ALTER TABLE public.users RENAME TO accounts", [Effect("rename table", "public.users")]),
    ("ALTER TABLE users RENAME CONSTRAINT c TO d", [Effect("rename constraint", "users.c")]),
    ("ALTER SCHEMA app RENAME TO app_old", [Effect("rename schema", "app")]),
    ("ALTER FUNCTION touch() RENAME TO touch_row", [Effect("rename function", "touch")]),
    ("ALTER TABLE users SET SCHEMA archive", [Effect("set schema", "users")]),
    ("DROP FUNCTION touch(), stamp(int)",
     [Effect("drop function", "touch"), Effect("drop function", "stamp")]),
    ("DROP PROCEDURE cleanup", [Effect("drop procedure", "cleanup")]),
    ("DROP FUNCTION touch() CASCADE", []),  # destructive instead
    ("DROP INDEX users_name_idx", []),
    ("ALTER TABLE users ADD COLUMN nick text", []),
]


@pytest.mark.parametrize("sql,expected", CONTRACT, ids=[s for s, _ in CONTRACT])
def test_contract_hints(sql, expected):
    assert list(only(sql).contract) == expected


def test_statement_kinds_are_pglast_node_names():
    kinds = [s.kind for s in classify(
        "DROP TABLE a; ALTER TABLE b DROP c; DO $$ BEGIN NULL; END $$; TRUNCATE d; "
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; CALL p()")]
    assert kinds == ["DropStmt", "AlterTableStmt", "DoStmt", "TruncateStmt",
                     "CreateFunctionStmt", "CallStmt"]


# --- lines, strings, comments ---------------------------------------------------------

def test_escape_string_does_not_hide_the_next_statement():
    sql = "SELECT E'\\'';\nDROP TABLE persona_examples;\n"
    first, second = classify(sql)
    assert (first.line, first.destructive) == (1, ())
    assert second.line == 2
    assert second.text == "DROP TABLE persona_examples"
    assert second.destructive == (Effect("drop table", "persona_examples"),)


def test_escape_string_with_a_semicolon_and_a_drop_inside():
    sql = "SELECT E'it\\'s; DROP TABLE x; --';\nDROP TABLE y;"
    assert [(s.line, s.destructive) for s in classify(sql)] == [
        (1, ()), (2, (Effect("drop table", "y"),))]


def test_backslash_does_not_escape_in_a_standard_string():
    # standard_conforming_strings is on (PostgreSQL's default): 'a\' is a whole string,
    # so what follows is a real statement, as the server would run it.
    sql = "SELECT 'a\\'; DROP TABLE x; --';"
    assert [(s.line, s.destructive) for s in classify(sql)] == [
        (1, ()), (1, (Effect("drop table", "x"),))]


def test_lines_skip_comments_and_multiline_literals():
    sql = (
        "-- shipshape:destructive\n"              # 1
        "/* a block\n"                            # 2
        "   comment; DROP TABLE fake; */\n"       # 3
        "SELECT 'multi\n"                         # 4
        "line; DELETE FROM fake';\n"              # 5
        "\n"                                      # 6
        "SELECT $body$ x;\n"                      # 7
        " TRUNCATE fake; $body$;   -- DROP TABLE fake;\n"  # 8
        "  DELETE\n"                              # 9
        "    FROM sessions;\n"                    # 10
        "ALTER TABLE users\n"                     # 11
        "  DROP COLUMN \"a b\";\n"                # 12
    )
    statements = classify(sql)
    assert [s.line for s in statements] == [4, 7, 9, 11]
    assert statements[2].text == "DELETE\n    FROM sessions"
    assert destructive_lines(sql) == [(9, Effect("delete rows", "sessions")),
                                      (11, Effect("drop column", 'users."a b"'))]


def destructive_lines(sql):
    return [(statement.line, effect) for statement, effect in destructive_effects(sql)]


def test_lines_are_lines_not_bytes_after_multibyte_text():
    # pglast reports character offsets; with byte offsets these lines would drift.
    sql = "SELECT 'ééééééééééééééé';\nSELECT '日本語のテキスト';\nDROP TABLE t;\n"
    statements = classify(sql)
    assert [s.line for s in statements] == [1, 2, 3]
    assert statements[2].text == "DROP TABLE t"


def test_last_statement_without_semicolon():
    [statement] = classify("\n\nTRUNCATE t\n\n")
    assert (statement.line, statement.text) == (3, "TRUNCATE t")


def test_empty_input_and_comment_only_input():
    assert classify("") == []
    assert classify("-- nothing\n/* at all */\n") == []


# --- syntax errors ----------------------------------------------------------------------

@pytest.mark.parametrize("sql,line", [
    ("SELEC 1", 1),
    ("SELECT 1;\n\nDROP TABEL users;\n", 3),
    ("SELECT 1;\nSELECT 'unterminated\n", 2),
    ("SELECT 'é';\nSELECT 'ü';\nALTER TABLE t DROP COLUMN;\n", 3),
])
def test_invalid_sql_raises_with_its_line(sql, line):
    with pytest.raises(SQLSyntaxError) as caught:
        classify(sql)
    assert caught.value.line == line
    assert caught.value.message
    assert str(caught.value).startswith(f"line {line}: ")


@pytest.mark.parametrize("body", [
    "  DELETE FORM users;",     # SQL the PL/pgSQL parser checks itself
    "  undeclared := 1;",       # PL/pgSQL's own rules
    "  IF (1 THEN NULL; END IF;",
])
def test_invalid_code_in_a_do_block_raises_at_the_block(body):
    # libpg_query's PL/pgSQL parser reports no position, so the line is the block's.
    sql = "SELECT 1;\nDO $$\nBEGIN\n" + body + "\nEND $$;\n"
    with pytest.raises(SQLSyntaxError) as caught:
        classify(sql)
    assert caught.value.line == 2
    assert caught.value.message.startswith("PL/pgSQL: ")


def test_invalid_sql_in_an_executed_string_names_its_line():
    sql = "SELECT 1;\nDO $$\nBEGIN\n  EXECUTE 'DROP TABEL x';\nEND $$;\n"
    with pytest.raises(SQLSyntaxError) as caught:
        classify(sql)
    assert caught.value.line == 4


# --- DO blocks and EXECUTE --------------------------------------------------------------

def test_do_block_statements_are_classified_at_their_lines():
    sql = (
        "DO $$\n"                                          # 1
        "DECLARE r record;\n"                              # 2
        "BEGIN\n"                                          # 3
        "  IF EXISTS (SELECT 1 FROM pg_tables) THEN\n"     # 4
        "    DROP TABLE legacy;\n"                         # 5
        "  ELSIF false THEN\n"                             # 6
        "    ALTER TABLE users DROP COLUMN age;\n"         # 7
        "  END IF;\n"                                      # 8
        "  FOR r IN SELECT id FROM users LOOP\n"           # 9
        "    DELETE FROM sessions WHERE uid = r.id;\n"     # 10
        "  END LOOP;\n"                                    # 11
        "EXCEPTION WHEN others THEN\n"                     # 12
        "  TRUNCATE audit;\n"                              # 13
        "END\n"                                            # 14
        "$$;\n")
    block = only(sql)
    assert block.kind == "DoStmt"
    assert list(block.destructive) == [
        Effect("drop table", "legacy"), Effect("drop column", "users.age"),
        Effect("delete rows", "sessions"), Effect("truncate", "audit")]
    assert destructive_lines(sql) == [
        (5, Effect("drop table", "legacy")), (7, Effect("drop column", "users.age")),
        (10, Effect("delete rows", "sessions")), (13, Effect("truncate", "audit"))]


def test_harmless_do_block_like_migration_0001():
    sql = (
        "DO $$\nBEGIN\n"
        "    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'app') THEN\n"
        "        CREATE ROLE app NOLOGIN;\n"
        "    END IF;\n"
        "EXCEPTION\n    WHEN duplicate_object OR unique_violation THEN\n        NULL;\n"
        "END\n$$;")
    block = only(sql)
    assert block.destructive == ()
    # The IF condition is an expression: kept only when it calls a destructive function.
    assert [(s.line, s.kind) for s in block.inner] == [(4, "CreateRoleStmt")]


def test_do_block_in_single_quotes_and_with_language():
    sql = "SELECT 1;\nDO LANGUAGE plpgsql 'BEGIN\n  DELETE FROM t WHERE a = ''x'';\nEND';"
    assert destructive_lines(sql) == [(3, Effect("delete rows", "t"))]


def test_execute_of_a_constant_string_is_parsed_and_classified():
    sql = "DO $$\nBEGIN\n  EXECUTE 'DROP TABLE legacy';\n  EXECUTE 'SELECT 1';\nEND $$;"
    assert destructive_lines(sql) == [(3, Effect("drop table", "legacy"))]


def test_execute_of_constants_concatenated_or_cast():
    sql = ("DO $$ BEGIN EXECUTE 'ALTER TABLE users ' || 'DROP COLUMN age'; "
           "EXECUTE 'TRUNCATE x'::text; EXECUTE E'DELETE FROM y WHERE a = \\'q\\''; END $$")
    assert effects(sql) == [Effect("drop column", "users.age"), Effect("truncate", "x"),
                            Effect("delete rows", "y")]


def test_execute_of_a_harmless_constant_is_harmless():
    assert effects("DO $$ BEGIN EXECUTE 'CREATE INDEX i ON t (a)'; END $$") == []


@pytest.mark.parametrize("execute", [
    "EXECUTE format('DROP TABLE %I', 'legacy');",
    "EXECUTE 'SELECT ' || quote_literal(v);",
    "EXECUTE v;",
    "EXECUTE 'GRANT SELECT ON ' || v || ' TO app';",  # harmless, but not known to be
    "FOR r IN EXECUTE v LOOP END LOOP;",
    "OPEN c FOR EXECUTE v;",
])
def test_execute_of_anything_else_is_unknown_and_destructive(execute):
    sql = ("DO $$\nDECLARE v text := 'x'; r record; c refcursor;\nBEGIN\n  "
           + execute + "\nEND $$;")
    assert destructive_lines(sql) == [(4, Effect("unknown dynamic SQL", ""))]


def test_execute_inside_execute_inside_do():
    sql = "DO $a$ BEGIN EXECUTE $q$DO $b$ BEGIN EXECUTE 'DROP SCHEMA old'; END $b$$q$; END $a$"
    assert effects(sql) == [Effect("drop schema", "old")]


def test_do_block_in_another_language_is_unknown():
    assert effects("DO LANGUAGE plpython3u $$ plpy.execute('DROP TABLE t') $$") == [
        Effect("unknown code", "plpython3u")]


def test_destructive_effects_report_the_innermost_statement():
    sql = "DO $$\nBEGIN\n  PERFORM 1;\n  DROP TABLE legacy;\nEND $$;"
    [(statement, effect)] = destructive_effects(sql)
    assert effect == Effect("drop table", "legacy")
    assert (statement.line, statement.kind, statement.text) == (4, "DropStmt", "DROP TABLE legacy")


# --- functions and their calls ----------------------------------------------------------

WIPE_PLPGSQL = (
    "CREATE FUNCTION wipe_sessions() RETURNS void\n"   # 1
    "LANGUAGE plpgsql AS $$\n"                          # 2
    "BEGIN\n"                                           # 3
    "  DELETE FROM sessions;\n"                         # 4
    "END $$;\n")


def test_destructive_function_definition_is_not_destructive_itself():
    definition = only(WIPE_PLPGSQL)
    assert definition.destructive == ()
    assert definition.defines == (Effect("delete rows", "sessions"),)
    assert [(s.line, s.kind) for s in definition.inner] == [(4, "DeleteStmt")]


@pytest.mark.parametrize("call", [
    "SELECT wipe_sessions();",
    "SELECT public.wipe_sessions();",
    "SELECT count(*) FROM users WHERE wipe_sessions() IS NULL;",
    "DO $$ BEGIN PERFORM wipe_sessions(); END $$;",
    "DO $$ DECLARE x int; BEGIN x := length(wipe_sessions()::text); END $$;",
    "DO $$ BEGIN IF wipe_sessions() IS NULL THEN NULL; END IF; END $$;",
    "CREATE TRIGGER t AFTER INSERT ON users EXECUTE FUNCTION wipe_sessions();",
])
def test_calling_a_destructive_function_is_destructive(call):
    statements = classify(WIPE_PLPGSQL + "SELECT 1;\n" + call)
    name = "public.wipe_sessions" if "public." in call else "wipe_sessions"
    assert statements[-1].destructive == (Effect("call destructive function", name),)
    assert statements[-1].line == 7


def test_procedure_called_with_call():
    sql = ("CREATE PROCEDURE purge(days int) LANGUAGE plpgsql AS $$\n"
           "BEGIN\n  DELETE FROM events WHERE age > days;\nEND $$;\n"
           "CALL purge(30);")
    definition, call = classify(sql)
    assert definition.defines == (Effect("delete rows", "events"),)
    assert call.destructive == (Effect("call destructive function", "purge"),)
    assert call.transactional


def test_call_inside_a_do_block():
    sql = ("CREATE PROCEDURE purge() LANGUAGE sql AS 'DELETE FROM events';\n"
           "DO $$\nBEGIN\n  CALL purge();\nEND $$;")
    assert destructive_lines(sql) == [(4, Effect("call destructive function", "purge"))]


@pytest.mark.parametrize("sql,expected", [
    ("SELECT lo_unlink(16409)", [Effect("call destructive function", "lo_unlink")]),
    ("SELECT dblink_exec('host=x', 'DROP TABLE t')", [Effect("unknown dynamic SQL",
                                                             "dblink_exec")]),
    ("CREATE RULE keep_short AS ON INSERT TO log DO ALSO DELETE FROM log WHERE id < NEW.id - 100",
     [Effect("delete rows", "log")]),
])
def test_other_ways_to_lose_data(sql, expected):
    assert effects(sql) == expected


def test_sql_function_bodies_are_classified():
    sql = ("CREATE FUNCTION a() RETURNS void LANGUAGE sql AS $$\n  TRUNCATE logs;\n$$;\n"
           "CREATE FUNCTION b() RETURNS void LANGUAGE sql\n"
           "BEGIN ATOMIC\n  DELETE FROM logs;\nEND;\n"
           "CREATE FUNCTION c(x int) RETURNS int LANGUAGE sql RETURN x + 1;\n"
           "SELECT a(), b(), c(1);")
    a, b, c, call = classify(sql)
    assert (a.destructive, a.defines) == ((), (Effect("truncate", "logs"),))
    assert [s.line for s in a.inner] == [2]
    assert (b.destructive, b.defines) == ((), (Effect("delete rows", "logs"),))
    assert c.defines == ()
    assert call.destructive == (Effect("call destructive function", "a"),
                                Effect("call destructive function", "b"))


def test_function_with_dynamic_sql_is_destructive_capable():
    sql = ("CREATE FUNCTION drop_it(t text) RETURNS void LANGUAGE plpgsql AS $$\n"
           "BEGIN EXECUTE format('DROP TABLE %I', t); END $$;\n"
           "SELECT drop_it('x');")
    definition, call = classify(sql)
    assert definition.defines == (Effect("unknown dynamic SQL", ""),)
    assert call.destructive == (Effect("call destructive function", "drop_it"),)


def test_function_in_an_unreadable_language_is_unknown():
    sql = ("CREATE FUNCTION py() RETURNS void LANGUAGE plpython3u AS $$ pass $$;\n"
           "CREATE FUNCTION cfun() RETURNS void LANGUAGE c AS 'lib', 'sym';\n"
           "SELECT py(), cfun();")
    py, cfun, call = classify(sql)
    assert py.defines == (Effect("unknown code", "plpython3u"),)
    assert cfun.defines == ()
    assert call.destructive == (Effect("call destructive function", "py"),)


def test_function_calling_a_destructive_function_is_destructive_capable():
    sql = (WIPE_PLPGSQL
           + "CREATE FUNCTION outer_fn() RETURNS void LANGUAGE sql AS 'SELECT wipe_sessions()';\n"
           + "SELECT outer_fn();")
    _, outer, call = classify(sql)
    assert outer.defines == (Effect("call destructive function", "wipe_sessions"),)
    assert call.destructive == (Effect("call destructive function", "outer_fn"),)


def test_harmless_functions_and_calls_before_a_definition_are_not_flagged():
    sql = ("SELECT wipe_sessions();\n" + WIPE_PLPGSQL
           + "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$\n"
           + "BEGIN NEW.\"updatedAt\" := now(); UPDATE counters SET n = n + 1;\n"
           + "RETURN NEW; END $$;\n"
           + "SELECT touch(), now(), lower('X');")
    before, _, touch, after = classify(sql)
    assert before.destructive == ()
    assert touch.defines == ()
    assert after.destructive == ()


def test_a_function_body_does_not_create_relations_now():
    # The CREATE TABLE inside the body runs later: the index after it still locks.
    sql = ("CREATE FUNCTION mk() RETURNS void LANGUAGE sql AS 'CREATE TABLE t (a int)';\n"
           "CREATE INDEX i ON t (a);")
    assert [lock.rule for lock in classify(sql)[1].locks] == ["create-index-nonconcurrent"]


# --- transactions -----------------------------------------------------------------------

TRANSACTIONAL = [
    ("CREATE INDEX CONCURRENTLY i ON t (a)", False),
    ("CREATE INDEX i ON t (a)", True),
    ("DROP INDEX CONCURRENTLY i", False),
    ("DROP INDEX i", True),
    ("REINDEX INDEX CONCURRENTLY i", False),
    ("REINDEX TABLE t", True),
    ("REINDEX DATABASE d", False),
    ("VACUUM t", False),
    ("VACUUM FULL t", False),
    ("ANALYZE t", True),
    ("ALTER TYPE mood ADD VALUE 'meh'", False),
    ("ALTER TYPE mood RENAME VALUE 'meh' TO 'fine'", True),
    ("CREATE DATABASE d", False),
    ("DROP DATABASE d", False),
    ("ALTER DATABASE d SET TABLESPACE fast", False),
    ("ALTER DATABASE d SET work_mem = '64MB'", True),
    ("CREATE TABLESPACE fast LOCATION '/ssd'", False),
    ("ALTER SYSTEM SET work_mem = '64MB'", False),
    ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY", False),
    ("ALTER TABLE p DETACH PARTITION c", True),
    ("COMMIT", False),
    ("BEGIN", False),
    ("DO $$ BEGIN DELETE FROM t; COMMIT; END $$", False),
    ("DO $$ BEGIN DELETE FROM t; END $$", True),
    ("DROP TABLE t", True),
    ("ALTER TABLE t ADD COLUMN a int", True),
]


@pytest.mark.parametrize("sql,expected", TRANSACTIONAL, ids=[s for s, _ in TRANSACTIONAL])
def test_transactional(sql, expected):
    assert only(sql).transactional is expected


def test_calling_a_procedure_that_commits_is_not_transactional():
    sql = ("CREATE PROCEDURE batches() LANGUAGE plpgsql AS $$\n"
           "BEGIN UPDATE t SET a = 1; COMMIT; END $$;\n"
           "CALL batches();")
    definition, call = classify(sql)
    assert definition.transactional and not call.transactional
    assert call.destructive == ()
    [block] = classify(sql.replace("CALL batches();", "DO $$ BEGIN CALL batches(); END $$;"))[1:]
    assert not block.transactional


# --- agreement with the project's own SQL tree ------------------------------------------

def rendered_tree(env_name):
    """(name, rendered SQL) of every migration and rollback of sql/ for one env."""
    env = load_environment(env_name, config_dir=ROOT, environ={})
    renderer = Renderer(ROOT / "sql", env)
    paths = sorted((ROOT / "sql" / "migrations").glob("*/*.sql.j2"))
    assert len(paths) >= 22  # 11 migrations, each with its rollback
    return [(f"{p.parent.name}/{p.name}", renderer.render(p)) for p in paths]


@pytest.mark.parametrize("env_name", ["local", "prod"])
def test_declared_destructive_is_exactly_what_the_grammar_finds(env_name):
    disagreements = []
    for name, sql in rendered_tree(env_name):
        declared = "destructive" in directives(sql)
        found = [effect for _, effect in destructive_effects(sql)]
        if bool(found) != declared:
            disagreements.append(f"{name}: declared={declared}, found={found}")
    assert disagreements == []


@pytest.mark.parametrize("env_name", ["local", "prod"])
def test_declared_no_transaction_covers_every_non_transactional_statement(env_name):
    for name, sql in rendered_tree(env_name):
        outside = [s.text for s in classify(sql) if not s.transactional]
        assert bool(outside) == ("no-transaction" in directives(sql)), (name, outside)


def test_rollback_of_0005_drops_exactly_its_columns():
    sql = dict(rendered_tree("prod"))["0005_avatar_persona_columns/rollback.sql.j2"]
    dropped = [effect.object for _, effect in destructive_effects(sql)]
    assert len(dropped) == 18
    assert dropped[0] == 'avatars."personaName"' and dropped[-1] == 'avatars."lastUsedAt"'


@pytest.mark.parametrize("preview", [True, False])
def test_fixes_and_checks_agree_too(preview):
    env = load_environment("prod", config_dir=ROOT, environ={})
    renderer = Renderer(ROOT / "sql", env)
    for path in sorted((ROOT / "sql" / "fixes").glob("*.sql.j2")):
        sql = renderer.render(path, preview=preview)
        assert bool(effects(sql)) == ("destructive" in directives(sql)), (path.name, preview)
    for path in sorted((ROOT / "sql" / "checks").glob("*.sql.j2")):
        assert effects(renderer.render(path)) == [], path.name
