"""Undeclared destructive SQL is refused with nothing changed: issue 10's repros.

Two layers, each proven on its own:
- the parser's gate (migrations.check_declared, PostgreSQL's grammar via pglast), through
  `invoke deploy --env staging` as an operator runs it, for every form the issue lists and
  the plain ones: exit 3, the statement named, schema and data unchanged;
- the runtime guard (engine.guard), which parses nothing: the same forms applied with the
  parser's gate bypassed are rolled back with exit 3; and, through the CLI, what the
  parser cannot see at all (a function or a trigger created outside the tree).
"""

from __future__ import annotations

import re
import shutil

import psycopg
import pytest
from psycopg import sql

from shipshape import db
from shipshape.engine import guard, history, migrations
from shipshape.errors import Refused
from tests.conftest import create_database, drop_database, dsn_for, run_invoke
from tests.treeutil import small_tree, write_migration

# Objects for every form to hit: a column with a space in its name, one of a domain type,
# the tables the repros dropped.
FIXTURES = """\
CREATE DOMAIN short_text AS text;
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, "a b" text, tag short_text);
INSERT INTO users (name, "a b", tag) VALUES ('Alexandra', 'long value', 'x'), ('Bartholomew', 'y', 'z');
CREATE TABLE avatar_presets (id int PRIMARY KEY);
INSERT INTO avatar_presets VALUES (1), (2);
CREATE TABLE persona_examples (id int PRIMARY KEY);
INSERT INTO persona_examples VALUES (1);
"""

# (id, migration SQL, what the refusal must quote)
FORMS = [
    ("alter-type-using", "ALTER TABLE users ALTER name TYPE varchar(3) USING left(name, 3);",
     "ALTER TABLE users ALTER name TYPE varchar(3) USING left(name, 3)"),
    ("do-execute-drop", "DO $$ BEGIN EXECUTE 'DROP TABLE avatar_presets'; END $$;",
     "DROP TABLE avatar_presets"),
    ("e-string-then-drop", "SELECT E'\\'';\nDROP TABLE persona_examples;",
     "DROP TABLE persona_examples"),
    ("quoted-column-type", 'ALTER TABLE users ALTER COLUMN "a b" TYPE varchar(20);',
     'ALTER TABLE users ALTER COLUMN "a b" TYPE varchar(20)'),
    ("merge-delete", ("MERGE INTO items i USING (SELECT 'apple' AS name) s ON i.name = s.name\n"
                     "WHEN MATCHED THEN DELETE;"), "MERGE INTO items i USING"),
    ("function-then-call",
     ("CREATE FUNCTION purge_items() RETURNS void LANGUAGE sql AS $$ DELETE FROM items $$;\n"
     "SELECT purge_items();"), "SELECT purge_items()"),
    ("drop-extension-cascade", "DROP EXTENSION IF EXISTS plpgsql CASCADE;",
     "DROP EXTENSION IF EXISTS plpgsql CASCADE"),
    ("drop-domain-cascade", "DROP DOMAIN short_text CASCADE;", "DROP DOMAIN short_text CASCADE"),
    ("drop-owned", "DROP OWNED BY CURRENT_USER;", "DROP OWNED BY CURRENT_USER"),
    ("dynamic-execute", "DO $$ BEGIN EXECUTE format('DROP TABLE %I', 'items'); END $$;",
     "format('DROP TABLE %I', 'items')"),
    ("drop-table", "DROP TABLE avatar_presets;", "DROP TABLE avatar_presets"),
    ("drop-column", "ALTER TABLE items DROP COLUMN price;", "ALTER TABLE items DROP COLUMN price"),
    ("truncate", "TRUNCATE items;", "TRUNCATE items"),
    ("delete", "DELETE FROM items WHERE name = 'apple';", "DELETE FROM items WHERE name = 'apple'"),
]


def base_tree(root):
    tree = small_tree(root)
    write_migration(tree, "0003_fixtures", FIXTURES,
                    "-- shipshape:destructive\nDROP TABLE users, avatar_presets, persona_examples;\n"
                    "DROP DOMAIN short_text;\n")
    return tree


def state(dsn):
    """Schema and data of everything a form could hurt, and the history."""
    with psycopg.connect(dsn) as conn:
        return {
            "columns": conn.execute(
                "SELECT table_name, column_name, data_type, character_maximum_length, "
                "domain_name FROM information_schema.columns WHERE table_schema = 'public' "
                "ORDER BY 1, 2").fetchall(),
            "items": conn.execute("SELECT name, price FROM items ORDER BY name").fetchall(),
            "users": conn.execute('SELECT name, "a b", tag FROM users ORDER BY id').fetchall(),
            "presets": conn.execute("SELECT id FROM avatar_presets ORDER BY id").fetchall(),
            "examples": conn.execute("SELECT id FROM persona_examples ORDER BY id").fetchall(),
            "history": conn.execute(
                "SELECT version, success FROM shipshape.history ORDER BY 1").fetchall(),
            "routines": conn.execute(
                "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace "
                "ORDER BY 1").fetchall(),
            "extensions": conn.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall(),
        }


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def deployed(admin_dsn, tmp_path_factory):
    """One staging database deployed with the base tree; every case must leave it as it
    is, so they share it (and a case that changed it would fail the next ones too)."""
    root = tmp_path_factory.mktemp("guard")
    tree = base_tree(root / "sql")
    name = create_database(admin_dsn)
    dsn = dsn_for(admin_dsn, name)
    environ = {"SHIPSHAPE_STATE_DIR": str(root / "state"), "DATABASE_URL": dsn}
    result = run_invoke("deploy", "--env", "staging", "--sql-dir", str(tree), env=environ)
    assert result.returncode == 0, result.stdout + result.stderr
    with psycopg.connect(dsn, autocommit=True) as conn:
        # The statistics the runtime guard reads to tell that a table held rows, as
        # autovacuum would leave them.
        conn.execute("ANALYZE")
    yield tree, dsn, environ
    drop_database(admin_dsn, name)


def with_migration(tree, tmp_path, sql):
    copy = tmp_path / "sql"
    shutil.copytree(tree, copy)
    write_migration(copy, "0004_change", sql, "SELECT 1;\n")
    return copy


@pytest.mark.parametrize("sql,quoted", [f[1:] for f in FORMS], ids=[f[0] for f in FORMS])
def test_the_parser_refuses_each_undeclared_form_through_deploy(deployed, tmp_path, sql, quoted):
    tree, dsn, environ = deployed
    before = state(dsn)
    result = run_invoke("deploy", "--env", "staging", "--sql-dir",
                        str(with_migration(tree, tmp_path, sql)), env=environ)
    assert result.returncode == 3, result.stdout + result.stderr
    err = flat(result.stderr)
    assert "does not declare `-- shipshape:destructive`" in err
    assert "0004_change/migrate.sql.j2:" in err and quoted in err, err
    assert "rerun `invoke deploy --env staging`" in err
    assert state(dsn) == before


@pytest.mark.parametrize("dry_run", [False, True], ids=["deploy", "dry-run"])
def test_sql_that_does_not_parse_is_bad_input_naming_its_line(deployed, tmp_path, dry_run):
    tree, dsn, environ = deployed
    before = state(dsn)
    copy = with_migration(tree, tmp_path, "SELECT 1;\n\nALTER TABLE items ADD COLUMN x int,;\n")
    result = run_invoke("deploy", "--env", "staging", *(["--dry-run"] if dry_run else []),
                        "--sql-dir", str(copy), env=environ)
    assert result.returncode == 5, result.stdout + result.stderr
    err = flat(result.stderr)
    assert "0004_change/migrate.sql.j2:3 (line of the rendered SQL) is not valid PostgreSQL" in err
    assert "`invoke render --env staging`" in err
    assert state(dsn) == before


# What no text shows: code that already exists in the database, created outside the tree.
OUTSIDE = [
    ("function-deletes",
     "CREATE FUNCTION tidy() RETURNS void LANGUAGE sql AS 'DELETE FROM items';",
     "SELECT tidy();", "deleted 2 row(s) from table public.items"),
    ("function-drops",
     ("CREATE FUNCTION tidy() RETURNS void LANGUAGE plpgsql AS "
     "$$ BEGIN EXECUTE 'DROP TABLE ' || 'persona_examples'; END $$;"),
     "SELECT tidy();", "dropped table public.persona_examples"),
    ("function-narrows",
     ("CREATE FUNCTION tidy() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE "
     "'ALTER TABLE users ALTER name TYPE varchar(3) USING left(name, 3)'; END $$;"),
     "SELECT tidy();", "changed the type of column public.users.name from text to character varying(3)"),
    ("function-truncates",
     ("CREATE FUNCTION tidy() RETURNS void LANGUAGE plpgsql AS "
     "$$ BEGIN EXECUTE 'TRUNCATE ' || 'avatar_presets'; END $$;"),
     "SELECT tidy();", "emptied table public.avatar_presets"),
    ("trigger-deletes",
     ("CREATE FUNCTION tidy() RETURNS trigger LANGUAGE plpgsql AS "
     "$$ BEGIN DELETE FROM avatar_presets; RETURN NULL; END $$;\n"
     "CREATE TRIGGER tidy AFTER UPDATE ON users FOR EACH STATEMENT EXECUTE FUNCTION tidy();"),
     "UPDATE users SET tag = tag;", "deleted 2 row(s) from table public.avatar_presets"),
]


@pytest.mark.parametrize("outside,sql,named", [o[1:] for o in OUTSIDE],
                         ids=[o[0] for o in OUTSIDE])
def test_the_runtime_guard_alone_catches_what_the_parser_cannot_see(
        deployed, tmp_path, outside, sql, named):
    tree, dsn, environ = deployed
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(outside)
    try:
        before = state(dsn)
        copy = with_migration(tree, tmp_path, sql)
        # the parser sees nothing destructive: its dry run passes (db.migrate's: deploy's
        # dry run also rehearses the seeds in a shadow, where tidy() does not exist)
        check = run_invoke("db.migrate", "--env", "staging", "--dry-run", "--sql-dir",
                           str(copy), env=environ)
        assert check.returncode == 0, check.stderr
        result = run_invoke("deploy", "--env", "staging", "--sql-dir", str(copy), env=environ)
        assert result.returncode == 3, result.stdout + result.stderr
        err = flat(result.stderr)
        assert "Migration 0004_change" in err and "lost data it does not declare" in err, err
        assert named in err and "rolled back" in err, err
        assert "rerun `invoke deploy --env staging`" in err
        assert state(dsn) == before
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DROP FUNCTION tidy() CASCADE")


# Not here: DROP EXTENSION (no extension of this server owns a table to lose) and DROP
# OWNED BY CURRENT_USER (the tests' bootstrap superuser owns the system: PostgreSQL
# refuses it). The parser's gate refuses both above.
RUNTIME_FORMS = [f for f in FORMS if f[0] not in ("drop-extension-cascade", "drop-owned")]

# What the runtime guard says it found, one pattern per line (a domain's oid varies).
GUARD_SAYS = {
    "alter-type-using": [(r"changed the type of column public\.users\.name from text to "
                          r"character varying\(3\)")],
    "do-execute-drop": [r"dropped table public\.avatar_presets"],
    "e-string-then-drop": [r"dropped table public\.persona_examples"],
    "quoted-column-type": [(r"changed the type of column public\.users\.a b from text to "
                            r"character varying\(20\)")],
    "merge-delete": [r"deleted 1 row\(s\) from table public\.items"],
    "function-then-call": [r"deleted 2 row\(s\) from table public\.items"],
    "drop-domain-cascade": [r"dropped column public\.users\.tag \(type \d+, dropped with it\)"],
    "dynamic-execute": [r"dropped table public\.items"],
    "drop-table": [r"dropped table public\.avatar_presets"],
    "drop-column": [r"dropped column public\.items\.price \(integer\)"],
    "truncate": [(r"emptied table public\.items: its storage was replaced and holds no rows "
                  r"\(TRUNCATE, or a rewrite\)")],
    "delete": [r"deleted 1 row\(s\) from table public\.items"],
}


@pytest.mark.parametrize("form,sql", [f[:2] for f in RUNTIME_FORMS],
                         ids=[f[0] for f in RUNTIME_FORMS])
def test_the_runtime_guard_refuses_each_form_without_the_parser(
        tmp_path, fresh_dsn, make_target, form, sql):
    """migrations.apply is what runs after the parser's gate; called directly with the
    run's watcher (as migrate() and the shadow pass it), the guard alone must roll each
    form back, its history row with it (state() reads the history), naming what was lost."""
    tree = base_tree(tmp_path / "sql")
    target = make_target(fresh_dsn, "staging")
    loaded = migrations.load(tree, target.env)
    with db.connect(target) as conn:
        history.ensure_history(conn)
        for migration in loaded:
            migrations.apply(conn, target.env, migration, applied_by="test")
        conn.execute("INSERT INTO items (name, price) VALUES ('apple', 3), ('pear', 5)")
        conn.execute("ANALYZE")
        conn.commit()
    before = state(fresh_dsn)
    write_migration(tree, "0004_change", sql, "SELECT 1;")
    change = migrations.load(tree, target.env)[-1]
    with db.connect(target) as conn, pytest.raises(Refused, match="lost data it does not declare"
                                                   ) as refused:
        migrations.apply(conn, target.env, change, applied_by="test", watcher=guard.Guard(conn))
    assert state(fresh_dsn) == before
    assert refused.value.exit_code == 3
    assert len(refused.value.details) == len(GUARD_SAYS[form]), refused.value.details
    for line, pattern in zip(refused.value.details, GUARD_SAYS[form], strict=True):
        assert re.fullmatch(pattern, line), line


def test_a_declared_destructive_migration_is_not_watched(tmp_path, fresh_dsn, make_target):
    tree = base_tree(tmp_path / "sql")
    write_migration(tree, "0004_change", "-- shipshape:destructive\nTRUNCATE avatar_presets;\n",
                    "SELECT 1;")
    target = make_target(fresh_dsn)
    with db.connect(target) as conn:
        history.ensure_history(conn)
        watcher = guard.Guard(conn)
        for migration in migrations.load(tree, target.env):
            migrations.apply(conn, target.env, migration, applied_by="test", watcher=watcher)
        assert conn.execute("SELECT count(*) FROM avatar_presets").fetchone() == (0,)


def test_a_rename_and_a_rewrite_that_keeps_rows_are_not_losses(tmp_path, fresh_dsn, make_target):
    """The guard matches columns by number and tables by oid, and a new storage file
    that still holds the rows is no loss: these pass."""
    tree = base_tree(tmp_path / "sql")
    write_migration(tree, "0004_change",
                    'ALTER TABLE users RENAME "a b" TO ab;\nALTER TABLE items RENAME TO goods;\n'
                    "ALTER TABLE avatar_presets ADD COLUMN token uuid DEFAULT gen_random_uuid();\n"
                    "UPDATE users SET tag = 'q';\n", "SELECT 1;")
    target = make_target(fresh_dsn)
    with db.connect(target) as conn:
        history.ensure_history(conn)
        for migration in migrations.load(tree, target.env)[:-1]:
            migrations.apply(conn, target.env, migration, applied_by="test")
        conn.execute("INSERT INTO items (name) VALUES ('apple'), ('pear')")
        conn.execute("ANALYZE")
        conn.commit()
        migrations.apply(conn, target.env, migrations.load(tree, target.env)[-1], applied_by="t",
                         watcher=guard.Guard(conn))
        assert conn.execute("SELECT count(*) FROM avatar_presets WHERE token IS NOT NULL"
                            ).fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM goods").fetchone() == (2,)


def test_one_run_keeps_the_snapshot_true_from_migration_to_migration(
        tmp_path, fresh_dsn, make_target):
    """The guard reads the catalog once per run and updates it from each migration: a
    table created and filled earlier in the run is protected, and a declared delete
    earlier in the run is not blamed on a later migration."""
    tree = base_tree(tmp_path / "sql")
    write_migration(tree, "0004_fill", "CREATE TABLE logs (id int);\n"
                    "INSERT INTO logs SELECT generate_series(1, 3);\n", "SELECT 1;")
    write_migration(tree, "0005_prune", "-- shipshape:destructive\nDELETE FROM logs WHERE id = 1;\n",
                    "SELECT 1;")
    write_migration(tree, "0006_widen", "ALTER TABLE logs ADD COLUMN note text;\n", "SELECT 1;")
    write_migration(tree, "0007_hidden", "SELECT tidy();\n", "SELECT 1;")
    run_sql = "CREATE FUNCTION tidy() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'TRUNCATE ' || 'logs'; END $$"
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute(run_sql)
    target = make_target(fresh_dsn)
    loaded = migrations.load(tree, target.env)
    with db.connect(target) as conn, pytest.raises(Refused, match="emptied table public.logs"):
        migrations.migrate(conn, target.env, loaded)
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT max(version) FROM shipshape.history").fetchone() == (6,)
        assert conn.execute("SELECT count(*) FROM logs").fetchone() == (2,)


def test_the_guard_checks_in_the_before_commit_hook_before_the_callers_own(
        tmp_path, fresh_dsn, make_target):
    """migrate() runs the guard's check inside each migration's transaction, after its
    history row and before COMMIT, and the caller's before_commit after it: a refused
    migration never reaches the caller's hook, and leaves neither its change nor its row."""
    tree = base_tree(tmp_path / "sql")
    write_migration(tree, "0004_fill", "CREATE TABLE logs (id int);\n"
                    "INSERT INTO logs SELECT generate_series(1, 3);\n", "SELECT 1;")
    write_migration(tree, "0005_hidden", "ALTER TABLE logs ADD COLUMN note text;\n"
                    "SELECT tidy();\n", "SELECT 1;")
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION tidy() RETURNS void LANGUAGE plpgsql AS "
                     "$$ BEGIN DELETE FROM logs WHERE id = 2; END $$")
    target = make_target(fresh_dsn)
    seen = []

    def hook(conn, migration):  # sees its own uncommitted history row
        seen.append((migration.name, conn.execute(
            "SELECT count(*) FROM shipshape.history WHERE version = %s",
            (migration.version,)).fetchone()[0]))

    loaded = migrations.load(tree, target.env)
    with db.connect(target) as conn, pytest.raises(Refused, match="deleted 1 row") as refused:
        migrations.migrate(conn, target.env, loaded, before_commit=hook)
    assert refused.value.exit_code == 3
    assert seen == [(m.name, 1) for m in loaded[:-1]]  # not 0005_hidden: refused before
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT max(version) FROM shipshape.history").fetchone() == (4,)
        assert conn.execute("SELECT count(*) FROM logs").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM information_schema.columns "
                            "WHERE table_name = 'logs' AND column_name = 'note'").fetchone() == (0,)


def test_a_role_without_the_temporary_privilege_is_told_the_grant_and_nothing_is_written(
        admin_dsn, tmp_path):
    """The guard's snapshot is a temporary table: where the deploying role may not create
    one, the run stops before it writes anything (exit 5) and names the GRANT that fixes
    it; with the grant, the same command deploys."""
    role = "ss_test_notemp"
    name = create_database(admin_dsn)
    tree = small_tree(tmp_path / "sql")
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(name), sql.Identifier(role)))
            conn.execute(sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC, {}").format(
                sql.Identifier(name), sql.Identifier(role)))
        with psycopg.connect(dsn_for(admin_dsn, name), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
        dsn = psycopg.conninfo.make_conninfo(dsn_for(admin_dsn, name), user=role)
        environ = {"SHIPSHAPE_STATE_DIR": str(tmp_path / "state"), "DATABASE_URL": dsn}
        migrate = ("db.migrate", "--env", "staging", "--sql-dir", str(tree))
        result = run_invoke(*migrate, env=environ)
        assert result.returncode == 5, result.stdout + result.stderr
        assert f'GRANT TEMPORARY ON DATABASE "{name}" TO "{role}";' in flat(result.stderr)
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                                "n.oid = c.relnamespace WHERE n.nspname IN ('public', "
                                "'shipshape')").fetchone() == (0,)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}").format(
                sql.Identifier(name), sql.Identifier(role)))
        result = run_invoke(*migrate, env=environ)
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        drop_database(admin_dsn, name)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_the_runtime_guard_in_one_run_on_each_server(tmp_path, server_dsn, make_target):
    """On the system PostgreSQL and on the embedded one (the shadow's scratch server and
    `local`): a table created and filled earlier in the run, then given a column, is
    protected later in the same run; a function defined outside the tree that drops a
    column and deletes a row is refused, each loss named, and nothing of it committed."""
    tree = tmp_path / "sql"
    write_migration(tree, "0001_logs", "CREATE TABLE logs (id int PRIMARY KEY, body text);\n"
                    "INSERT INTO logs SELECT i, 'x' FROM generate_series(1, 3) i;\n", "SELECT 1;")
    write_migration(tree, "0002_note", "ALTER TABLE logs ADD COLUMN note text;\n"
                    "ALTER TABLE logs RENAME body TO text_body;\n", "SELECT 1;")
    write_migration(tree, "0003_tidy", "SELECT tidy();\n", "SELECT 1;")
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION tidy() RETURNS void LANGUAGE plpgsql AS $$ BEGIN "
                     "ALTER TABLE logs DROP COLUMN note; DELETE FROM logs WHERE id = 2; END $$")
    target = make_target(server_dsn)
    loaded = migrations.load(tree, target.env)
    with db.connect(target) as conn, pytest.raises(Refused) as refused:
        migrations.migrate(conn, target.env, loaded)
    assert refused.value.exit_code == 3
    assert "Migration 0003_tidy" in refused.value.message
    assert refused.value.details == ["dropped column public.logs.note (text)",
                                     "deleted 1 row(s) from table public.logs"]
    with psycopg.connect(server_dsn) as conn:
        assert conn.execute("SELECT max(version) FROM shipshape.history").fetchone() == (2,)
        assert conn.execute("SELECT count(*), count(note) FROM logs").fetchone() == (3, 0)


def test_a_migration_that_discards_the_guards_objects_is_refused_and_not_applied(
        deployed, tmp_path):
    """DISCARD TEMP in a migration takes the guard's snapshot and check with it: that is
    no loss to report, and no reason to apply unchecked either. Exit 3, saying which
    statement to remove; nothing of the migration committed."""
    tree, dsn, environ = deployed
    before = state(dsn)
    copy = with_migration(tree, tmp_path, "CREATE TABLE scratch_copy (id int);\nDISCARD TEMP;\n")
    result = run_invoke("deploy", "--env", "staging", "--sql-dir", str(copy), env=environ)
    assert result.returncode == 3, result.stdout + result.stderr
    error = flat(result.stderr)
    assert "dropped the runtime guard's temporary objects (DISCARD TEMP" in error
    assert "`invoke deploy --env staging`" in error and "Traceback" not in error
    assert state(dsn) == before
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('scratch_copy')").fetchone() == (None,)
