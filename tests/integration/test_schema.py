"""The shipped SQL tree (sql/) against real PostgreSQL.

Migrations are applied with the engine (shipshape.migrations) for every env, on the
PostgreSQL 15 test server and on an embedded PostgreSQL 18; the resulting schema is
compared with the contract the app is written against (the incident record's tables,
columns, indexes, foreign keys and grants). Every rollback must invert its migration
exactly; every seed file must load into the schema; every data check must run clean on a
healthy database and find the rows it is about on a broken one.
"""

from __future__ import annotations

import re
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql
from psycopg.types.json import Jsonb

from shipshape.engine import history, migrations
from shipshape.engine.render import Renderer, directives
from shipshape.settings import KNOWN_ENVS, Environment, load_environment

ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = ROOT / "sql"

# The first migrations of the tree: the Avatar Creator schema of the incident record.
# Later migrations may follow; the contract below covers these tables exactly.
MIGRATIONS = [
    "0001_users",
    "0002_ai_models",
    "0003_avatar_projects",
    "0004_avatars",
    "0005_avatar_persona_columns",
    "0006_avatar_generations",
    "0007_avatar_presets",
    "0008_persona_examples",
    "0009_avatar_usage_history",
    "0010_performance_indexes",
]

# The schema contract: "name type", "!" = NOT NULL, in column order.
_TS = "timestamptz"
EXPECTED_COLUMNS = {
    "users": f"""id text!, email text!, name text, creditBalance integer!,
        accountType text!, subscriptionTier text!, unlimitedUntil {_TS},
        createdAt {_TS}!, updatedAt {_TS}!""",
    "ai_models": f"""id text!, appId text!, modelId text!, modelKey text!, name text!,
        description text, provider text!, tier text!, creditCost integer!,
        capabilities jsonb!, enabled boolean!, displayOrder integer!,
        createdAt {_TS}!, updatedAt {_TS}!""",
    "avatar_projects": f"""id text!, userId text!, name text!, description text,
        createdAt {_TS}!, updatedAt {_TS}!""",
    "avatars": f"""id text!, userId text!, projectId text!, name text!, baseImageUrl text!,
        thumbnailUrl text, createdAt {_TS}!, updatedAt {_TS}!,
        personaName text, personaAge integer, personaPersonality text,
        personaBackground text, gender text, ageRange text, ethnicity text, bodyType text,
        hairStyle text, hairColor text, eyeColor text, skinTone text, style text,
        sourceType text!, generationPrompt text, seedUsed integer, usageCount integer!,
        lastUsedAt {_TS}""",
    "avatar_generations": f"""id text!, userId text!, avatarId text, projectId text!,
        status text!, prompt text!, options jsonb!, errorMessage text,
        createdAt {_TS}!, completedAt {_TS}""",
    "avatar_presets": f"""id text!, name text!, previewImageUrl text!, category text!,
        personaTemplate jsonb!, generationPrompt text!, isPublic boolean!,
        usageCount integer!, createdAt {_TS}!, updatedAt {_TS}!""",
    "persona_examples": f"""id text!, name text!, category text!, personaName text!,
        personaAge integer, personaPersonality text, personaBackground text,
        displayOrder integer!, isActive boolean!, createdAt {_TS}!""",
    "avatar_usage_history": f"""id text!, avatarId text!, userId text!, appId text!,
        action text!, metadata jsonb!, createdAt {_TS}!""",
}

EXPECTED_INDEXES = {
    "users": {"users_pkey", "users_email_key"},
    "ai_models": {"ai_models_pkey", "ai_models_modelKey_key", "ai_models_appId_enabled_idx"},
    "avatar_projects": {"avatar_projects_pkey", "avatar_projects_userId_idx"},
    "avatars": {"avatars_pkey", "avatars_userId_createdAt_idx", "avatars_userId_idx",
                "avatars_projectId_idx", "avatars_sourceType_idx"},
    "avatar_generations": {
        "avatar_generations_pkey", "avatar_generations_userId_idx",
        "avatar_generations_status_idx", "avatar_generations_projectId_idx",
        "avatar_generations_avatarId_idx", "avatar_generations_userId_status_idx",
        "avatar_generations_userId_createdAt_idx",
        "avatar_generations_projectId_createdAt_idx",
        "avatar_generations_status_createdAt_idx"},
    "avatar_presets": {"avatar_presets_pkey", "avatar_presets_name_key",
                       "avatar_presets_category_idx"},
    "persona_examples": {"persona_examples_pkey", "persona_examples_name_key",
                         "persona_examples_category_displayOrder_idx"},
    "avatar_usage_history": {"avatar_usage_history_pkey", "avatar_usage_history_avatarId_idx",
                             "avatar_usage_history_userId_idx"},
}

# Foreign keys: name -> (table, column, referenced table, ON DELETE action).
EXPECTED_FKS = {
    "avatar_projects_userId_fkey": ("avatar_projects", "userId", "users", "CASCADE"),
    "avatars_userId_fkey": ("avatars", "userId", "users", "CASCADE"),
    "avatars_projectId_fkey": ("avatars", "projectId", "avatar_projects", "CASCADE"),
    "avatar_generations_userId_fkey": ("avatar_generations", "userId", "users", "CASCADE"),
    "avatar_generations_avatarId_fkey": ("avatar_generations", "avatarId", "avatars", "SET NULL"),
    "avatar_generations_projectId_fkey":
        ("avatar_generations", "projectId", "avatar_projects", "CASCADE"),
    "avatar_usage_history_avatarId_fkey":
        ("avatar_usage_history", "avatarId", "avatars", "CASCADE"),
    "avatar_usage_history_userId_fkey": ("avatar_usage_history", "userId", "users", "CASCADE"),
}

# What the app role may do, table by table; everything else must be refused.
EXPECTED_GRANTS = {
    "users": {"SELECT", "INSERT", "UPDATE"},
    "ai_models": {"SELECT"},
    "avatar_projects": {"SELECT", "INSERT", "UPDATE", "DELETE"},
    "avatars": {"SELECT", "INSERT", "UPDATE", "DELETE"},
    "avatar_generations": {"SELECT", "INSERT", "UPDATE"},
    "avatar_presets": {"SELECT", "UPDATE"},
    "persona_examples": {"SELECT"},
    "avatar_usage_history": {"SELECT", "INSERT"},
}
ALL_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")

# The four models of incident 1: key -> (name, tier, credit cost).
EXPECTED_MODELS = {
    "avatar-creator:flux-dev-base": ("FLUX.1-dev Base", "free", 8),
    "avatar-creator:flux-dev-realism": ("FLUX.1-dev + Realism LoRA", "basic", 12),
    "avatar-creator:flux-dev-hd-realism": ("FLUX.1-dev HD + Realism LoRA", "pro", 15),
    "avatar-creator:flux-schnell-fast": ("FLUX.1-schnell Fast", "basic", 6),
}

# Data checks of the incident record (others may be added; each needs the same header).
CHECKS = {"orphaned_avatars", "avatar_required_nulls", "negative_credit_balance",
          "stuck_generations", "generations_without_project", "app_role_ddl_privileges"}


def _parse_columns(spec: str) -> list[tuple[str, str, bool]]:
    names = {"timestamptz": "timestamp with time zone"}
    result = []
    for item in (part.strip() for part in spec.split(",")):
        name, kind = item.split()
        result.append((name, names.get(kind.rstrip("!"), kind.rstrip("!")), kind.endswith("!")))
    return result


# --- servers, databases, environments --------------------------------------------------

def distinct_renderings() -> list[str]:
    """One env per distinct rendering of the migrations (local stands for dev and staging
    while they render the same SQL); every env if rendering fails here, so that the
    tests, not the collection, report it."""
    try:
        seen = {}
        for name in KNOWN_ENVS:
            text = tuple(m.sql + m.rollback_sql
                         for m in migrations.load(SQL_DIR, environment(name)))
            seen.setdefault(text, name)
        return list(seen.values())
    except Exception:
        return list(KNOWN_ENVS)


@contextmanager
def scratch_database(admin: str):
    """A new empty database on the server of admin, dropped afterwards."""
    name = f"ss_schema_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        # Scratch data: no need to wait for WAL flushes at every commit.
        yield psycopg.conninfo.make_conninfo(admin, dbname=name,
                                             options="-c synchronous_commit=off")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))


def environment(name: str) -> Environment:
    return load_environment(name, config_dir=ROOT, environ={})


def migrate_all(conn: psycopg.Connection, env: Environment) -> list[migrations.Migration]:
    loaded = migrations.load(SQL_DIR, env)
    history.ensure_history(conn)
    for migration in loaded:
        migrations.apply(conn, env, migration, applied_by="test_schema")
    return loaded


def snapshot(conn: psycopg.Connection, role: str) -> dict:
    """What a migration may change, in comparable form: tables, columns (type, nullability,
    default), indexes, constraints (with FK actions), sequences, triggers, grants. Plus
    shipshape.app_instances, which 0012 creates in the shipshape schema (shipshape's own
    bookkeeping tables there are not the migrations' to change)."""
    queries = {
        "relations": """SELECT c.relname, c.relkind, c.relacl::text FROM pg_class c
            WHERE (c.relnamespace = 'public'::regnamespace
                 OR c.oid = to_regclass('shipshape.app_instances')) ORDER BY 1""",
        "columns": """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
                a.attacl::text,
                rank() OVER (PARTITION BY c.oid ORDER BY a.attnum)
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE (c.relnamespace = 'public'::regnamespace
                 OR c.oid = to_regclass('shipshape.app_instances')) AND c.relkind IN ('r', 'p', 'v', 'm')
              AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 9""",
        "indexes": """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid),
                i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
            WHERE (c.relnamespace = 'public'::regnamespace
                 OR c.oid = to_regclass('shipshape.app_instances')) ORDER BY 1""",
        "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
            FROM pg_constraint WHERE (connamespace = 'public'::regnamespace
                 OR conrelid = to_regclass('shipshape.app_instances')) ORDER BY 1, 2""",
        "sequences": """SELECT sequencename, data_type::text, start_value, increment_by
            FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1""",
        "triggers": """SELECT tgrelid::regclass::text, tgname FROM pg_trigger
            WHERE NOT tgisinternal ORDER BY 1, 2""",
        "functions": """SELECT p.oid::regprocedure::text FROM pg_proc p
            WHERE p.pronamespace = 'public'::regnamespace ORDER BY 1""",
        "types": """SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace
            AND typtype IN ('e', 'd', 'c') AND typrelid = 0 ORDER BY 1""",
        "schema_acl": "SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'",
        "role": """SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole
            FROM pg_roles WHERE rolname = %(role)s""",
    }
    script = ";\n".join(queries.values()).replace("%(role)s", sql.Literal(role).as_string(conn))
    cur = conn.execute(script)  # one round trip: the results come back as sets
    result = {}
    for name in queries:
        result[name] = cur.fetchall()
        cur.nextset()
    conn.commit()  # read-only; leaves the connection idle, as the engine expects it
    return result


def public_tables(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]


# --- rendering (no database) -------------------------------------------------------------

@pytest.mark.parametrize("env_name", KNOWN_ENVS)
def test_migrations_render_for_every_env(env_name):
    env = environment(env_name)
    loaded = migrations.load(SQL_DIR, env)
    assert [m.name for m in loaded][:len(MIGRATIONS)] == MIGRATIONS
    assert [m.version for m in loaded] == list(range(1, len(loaded) + 1))
    by_name = {m.name: m for m in loaded}

    indexes = by_name["0010_performance_indexes"]
    concurrent = env.concurrent_indexes
    assert concurrent == (env_name == "prod")
    assert ("CREATE INDEX CONCURRENTLY" in indexes.sql) is concurrent
    assert ("DROP INDEX CONCURRENTLY" in indexes.rollback_sql) is concurrent
    assert indexes.transactional is not concurrent
    assert ("no-transaction" in directives(indexes.rollback_sql)) is concurrent
    assert len(re.findall(r"CREATE INDEX", indexes.sql)) == 3
    # The tree's rule: create_index()/drop_index() only under transaction_directive(),
    # in migrate and rollback alike; everything else is transactional in every env.
    for migration in loaded:
        for template, rendered in ((migration.path, migration.sql),
                                   (migration.rollback_path, migration.rollback_sql)):
            source = re.sub(r"--[^\n]*|\{#.*?#\}", "", template.read_text(), flags=re.S)
            uses_macros = re.search(r"\b(create|drop)_index\(", source) is not None
            assert ("transaction_directive()" in source) is uses_macros, template
            code = "\n".join(migrations.split(rendered))  # statements only, no comments
            assert ("CONCURRENTLY" in code) is (uses_macros and concurrent), template
            assert ("no-transaction" in directives(rendered)) is (uses_macros and concurrent)

    # Only rollbacks lose data, and they say so; an index rollback loses none.
    assert not any(by_name[name].destructive for name in MIGRATIONS)
    assert [by_name[name].rollback_destructive for name in MIGRATIONS] == [True] * 9 + [False]
    # The app role is the env's, never a hard-coded name.
    assert f'"{env.app_role}"' in by_name["0001_users"].sql


def test_migrations_render_with_another_app_role():
    env = load_environment("dev", overrides={"app_role": "other_app"}, config_dir=ROOT,
                           environ={})
    text = "\n".join(m.sql + m.rollback_sql for m in migrations.load(SQL_DIR, env))
    assert "avatar_app" not in text
    assert text.count('"other_app"') >= 2 * len(EXPECTED_GRANTS)


# --- applying, checking the schema, rolling back -----------------------------------------

@pytest.mark.parametrize(("server", "env_name"), [
    *(("system", name) for name in KNOWN_ENVS),
    *(("embedded", name) for name in distinct_renderings()),
], indirect=["server"])
def test_migrations_apply_and_roll_back(server, env_name):
    """All migrations on a fresh database: every env on the system PostgreSQL (15), and
    each distinct rendering on the embedded PostgreSQL 18 (conftest's `server`)."""
    env = environment(env_name)
    with scratch_database(server.admin_dsn) as dsn, psycopg.connect(dsn) as conn:
        loaded = migrate_all(conn, env)
        recorded = history.read_history(conn)
        assert sorted(recorded) == [m.version for m in loaded]
        assert all(row["success"] for row in recorded.values())

        assert_schema(conn)
        assert_app_role(conn, env.app_role)
        applied = snapshot(conn, env.app_role)

        for migration in reversed(loaded):
            migrations.rollback_one(conn, env, migration)
        assert public_tables(conn) == []
        after_rollback = snapshot(conn, env.app_role)
        assert after_rollback["relations"] == after_rollback["constraints"] == []
        assert history.read_history(conn) == {}
        # Rollbacks revoke, but never drop the cluster-wide role.
        assert after_rollback["role"] == [(env.app_role, False, False, False, False)]

        # Re-runnable where the role exists, and up-down-up gives the identical catalog.
        migrate_all(conn, env)
        assert snapshot(conn, env.app_role) == applied


def assert_schema(conn: psycopg.Connection) -> None:
    assert set(EXPECTED_COLUMNS) <= set(public_tables(conn))
    for table, spec in EXPECTED_COLUMNS.items():
        actual = conn.execute(
            """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
               FROM pg_attribute a WHERE a.attrelid = %s::regclass
                 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""",
            [table]).fetchall()
        assert actual == _parse_columns(spec), table

    # The incidents' own verification queries (information_schema, as they wrote them).
    def count_columns(table):
        return conn.execute("SELECT count(*) FROM information_schema.columns "
                            "WHERE table_schema = 'public' AND table_name = %s",
                            [table]).fetchone()[0]

    assert count_columns("avatars") == 26  # troubleshooting guide, incident 3
    assert count_columns("avatar_generations") == 10  # incident 4
    assert conn.execute(
        """SELECT data_type, is_nullable FROM information_schema.columns
           WHERE table_name = 'avatar_generations' AND column_name = 'projectId'"""
    ).fetchone() == ("text", "NO")

    indexes = {}
    for table, index in conn.execute(
            "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public'"):
        indexes.setdefault(table, set()).add(index)
    assert {t: indexes[t] for t in EXPECTED_INDEXES} == EXPECTED_INDEXES
    assert len(indexes["avatar_generations"]) >= 8  # incident 4: "8+ indexes"
    assert conn.execute("SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
                        "WHERE c.relnamespace = 'public'::regnamespace AND NOT i.indisvalid"
                        ).fetchone()[0] == 0
    assert conn.execute("SELECT pg_get_indexdef(%s::regclass)",
                        ['"avatars_userId_createdAt_idx"']).fetchone()[0].endswith(
        '("userId", "createdAt" DESC)')

    actions = {"c": "CASCADE", "n": "SET NULL", "a": "NO ACTION", "r": "RESTRICT",
               "d": "SET DEFAULT"}
    fks = {
        name: (table, column, target, actions[action])
        for name, table, column, target, action in conn.execute(
            """SELECT c.conname, c.conrelid::regclass::text, a.attname,
                      c.confrelid::regclass::text, c.confdeltype
               FROM pg_constraint c
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
               WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
                 AND c.conrelid::regclass::text = ANY(%s)""", [list(EXPECTED_COLUMNS)])
    }
    assert fks == EXPECTED_FKS

    defaults = dict(conn.execute(
        """SELECT table_name || '.' || column_name, column_default
           FROM information_schema.columns WHERE table_schema = 'public'
             AND column_default IS NOT NULL"""
    ).fetchall())
    assert defaults["avatars.sourceType"] == "'uploaded'::text"
    assert defaults["avatars.usageCount"] == "0"
    assert defaults["avatar_generations.status"] == "'pending'::text"
    assert defaults["avatar_generations.options"] == "'{}'::jsonb"
    assert defaults["users.accountType"] == "'payg'::text"
    assert defaults["users.subscriptionTier"] == "'free'::text"
    for table in EXPECTED_COLUMNS:
        assert defaults[f"{table}.id"] == "(gen_random_uuid())::text", table
        assert defaults[f"{table}.createdAt"] == "now()", table

    checks = dict(conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'c' "
        "AND connamespace = 'public'::regnamespace AND conrelid::regclass::text = ANY(%s)",
        [list(EXPECTED_COLUMNS)]).fetchall())
    assert set(checks) == {"users_creditBalance_check", "users_accountType_check",
                           "users_subscriptionTier_check", "ai_models_tier_check",
                           "ai_models_creditCost_check", "avatar_generations_status_check"}
    assert "'processing'::text" in checks["avatar_generations_status_check"]


def assert_app_role(conn: psycopg.Connection, role: str) -> None:
    """The app role gets exactly its grants, and no DDL: checked by acting as it."""
    assert conn.execute("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = %s",
                        [role]).fetchone() == (False, False)
    granted = {}
    for table, privilege in conn.execute(
            """SELECT t, p FROM unnest(%s::text[]) t, unnest(%s::text[]) p
               WHERE has_table_privilege(%s, t, p)""",
            [list(EXPECTED_GRANTS), list(ALL_PRIVILEGES), role]):
        granted.setdefault(table, set()).add(privilege)
    assert granted == EXPECTED_GRANTS
    assert conn.execute("SELECT has_schema_privilege(%s, 'public', 'USAGE'), "
                        "has_schema_privilege(%s, 'public', 'CREATE')",
                        [role, role]).fetchone() == (True, False)
    conn.commit()

    def as_app(statement):
        with conn.transaction(force_rollback=True):
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            return conn.execute(statement).fetchall()

    assert as_app("SELECT count(*) FROM ai_models") == [(0,)]
    for refused in (
        "INSERT INTO ai_models (\"appId\", \"modelId\", \"modelKey\", name, provider, tier, "
        "\"creditCost\") VALUES ('a', 'm', 'a:m', 'n', 'p', 'free', 1)",
        "UPDATE ai_models SET enabled = false",
        "CREATE TABLE app_made (id int)",
        "ALTER TABLE avatars ADD COLUMN app_made int",
        "DROP TABLE avatar_presets",
        "TRUNCATE avatars",
        "DELETE FROM avatar_usage_history",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            as_app(refused)

    # The app's own flow works with only its grants, including deleting a project,
    # whose cascade to generations runs with the table owner's rights.
    with conn.transaction(force_rollback=True):
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        user = conn.execute("INSERT INTO users (email) VALUES ('app@example.test') "
                            "RETURNING id").fetchone()[0]
        conn.execute('UPDATE users SET "creditBalance" = 10 WHERE id = %s', [user])
        project = conn.execute('INSERT INTO avatar_projects ("userId", name) VALUES (%s, %s) '
                               "RETURNING id", [user, "p"]).fetchone()[0]
        avatar = conn.execute(
            'INSERT INTO avatars ("userId", "projectId", name, "baseImageUrl") '
            "VALUES (%s, %s, 'a', '/a.png') RETURNING id, \"sourceType\"",
            [user, project]).fetchone()
        assert avatar[1] == "uploaded"
        conn.execute('INSERT INTO avatar_generations ("userId", "projectId", prompt) '
                     "VALUES (%s, %s, 'headshot')", [user, project])
        conn.execute('INSERT INTO avatar_usage_history ("avatarId", "userId", "appId", action) '
                     "VALUES (%s, %s, 'avatar-creator', 'generate')", [avatar[0], user])
        conn.execute('UPDATE avatar_presets SET "usageCount" = "usageCount" + 1')
        conn.execute("SELECT * FROM persona_examples").fetchall()
        conn.execute("DELETE FROM avatar_projects WHERE id = %s", [project])
        assert conn.execute("SELECT count(*) FROM avatar_generations").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM avatars").fetchone()[0] == 0


@pytest.mark.parametrize("env_name", distinct_renderings())
def test_every_rollback_exactly_inverts_its_migration(admin_dsn, env_name):
    """Per migration: up, down gives the catalog before it; up again the one after it."""
    env = environment(env_name)
    loaded = migrations.load(SQL_DIR, env)
    with scratch_database(admin_dsn) as dsn, psycopg.connect(dsn) as conn:
        history.ensure_history(conn)
        for migration in loaded:
            before = snapshot(conn, env.app_role)
            migrations.apply(conn, env, migration, applied_by="test_schema")
            after = snapshot(conn, env.app_role)
            assert after != before, migration.name
            migrations.rollback_one(conn, env, migration)
            assert snapshot(conn, env.app_role) == before, f"rollback of {migration.name}"
            migrations.apply(conn, env, migration, applied_by="test_schema")
            assert snapshot(conn, env.app_role) == after, f"re-applying {migration.name}"


@pytest.fixture(scope="module")
def migrated(admin_dsn):
    """One database migrated for `local`, shared by the tests below."""
    with scratch_database(admin_dsn) as dsn:
        with psycopg.connect(dsn) as conn:
            migrate_all(conn, environment("local"))
        yield dsn


@pytest.fixture
def conn(migrated):
    """A connection to the shared database in a transaction that is always rolled back:
    tests may insert rows and even break constraints without affecting each other."""
    with psycopg.connect(migrated) as connection:
        with connection.transaction(force_rollback=True):
            yield connection


def test_foreign_key_actions_behave(conn):
    """Deleting an avatar keeps its generations (SET NULL); deleting a user removes all."""
    user = conn.execute("INSERT INTO users (email) VALUES ('u@example.test') RETURNING id"
                        ).fetchone()[0]
    project = conn.execute('INSERT INTO avatar_projects ("userId", name) VALUES (%s, %s) '
                           "RETURNING id", [user, "p"]).fetchone()[0]
    avatar = conn.execute('INSERT INTO avatars ("userId", "projectId", name, "baseImageUrl")'
                          " VALUES (%s, %s, 'a', '/a.png') RETURNING id",
                          [user, project]).fetchone()[0]
    generation = conn.execute(
        'INSERT INTO avatar_generations ("userId", "avatarId", "projectId", prompt) '
        "VALUES (%s, %s, %s, 'x') RETURNING id", [user, avatar, project]).fetchone()[0]
    conn.execute("DELETE FROM avatars WHERE id = %s", [avatar])
    assert conn.execute('SELECT "avatarId" FROM avatar_generations WHERE id = %s',
                        [generation]).fetchone() == (None,)
    with pytest.raises(psycopg.errors.NotNullViolation):
        with conn.transaction():
            conn.execute('INSERT INTO avatar_generations ("userId", prompt) '
                         "VALUES (%s, 'x')", [user])
    with pytest.raises(psycopg.errors.CheckViolation):
        with conn.transaction():
            conn.execute('UPDATE users SET "creditBalance" = -1 WHERE id = %s', [user])
    conn.execute("DELETE FROM users WHERE id = %s", [user])
    for table in ("avatar_projects", "avatars", "avatar_generations"):
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                            ).fetchone()[0] == 0, table


# --- seeds -------------------------------------------------------------------------------

def load_seeds() -> dict[str, dict]:
    return {path.stem: yaml.safe_load(path.read_text())
            for path in sorted((SQL_DIR / "seeds").glob("*.yaml"))}


def seed_applies(seed: dict, env: Environment) -> bool:
    return seed["set"] in env.seed_sets and env.name in seed.get("envs", KNOWN_ENVS)


def upsert(conn: psycopg.Connection, seed: dict, row: dict) -> None:
    """A plain upsert on the seed's key, as the seed engine is specified to do."""
    columns = list(row)
    values = [Jsonb(v) if isinstance(v, (dict, list)) else v for v in row.values()]
    updates = [c for c in columns if c not in seed["key"] and c not in seed.get("initial", [])]
    conn.execute(
        sql.SQL("INSERT INTO {t} ({c}) VALUES ({v}) ON CONFLICT ({k}) DO UPDATE SET {u}").format(
            t=sql.Identifier(seed["table"]),
            c=sql.SQL(", ").join(map(sql.Identifier, columns)),
            v=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            k=sql.SQL(", ").join(map(sql.Identifier, seed["key"])),
            u=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                                 for c in updates)),
        values)


def test_seed_files_declare_what_each_env_gets():
    seeds = load_seeds()
    assert {"ai_models", "demo_users", "avatar_presets", "persona_examples"} <= set(seeds)
    for name, seed in seeds.items():
        assert set(seed) <= {"table", "key", "set", "envs", "initial", "rows", "overrides"}, name
        assert seed["set"] in {"reference", "demo"}, name
        assert set(seed.get("envs", KNOWN_ENVS)) <= set(KNOWN_ENVS), name
        assert seed["rows"], name
        for row in seed["rows"]:
            assert set(seed["key"]) <= set(row), (name, row)
        keys = [tuple(row[k] for k in seed["key"]) for row in seed["rows"]]
        assert len(keys) == len(set(keys)), f"{name}: duplicate keys"
        for env_name, rows in (seed.get("overrides") or {}).items():
            assert env_name in KNOWN_ENVS, name
            assert {tuple(r[k] for k in seed["key"]) for r in rows} <= set(keys), name
    for env_name in KNOWN_ENVS:
        env = environment(env_name)
        applied = {n for n, s in seeds.items() if seed_applies(s, env)}
        assert ("ai_models" in applied) is True, env_name  # incident 1: in every env
        assert ("demo_users" in applied) is (env_name in ("local", "dev")), env_name
        assert all(seeds[n]["set"] in env.seed_sets for n in applied), env_name
        assert not any(seeds[n]["set"] == "demo" for n in applied) or "demo" in env.seed_sets
    assert seeds["demo_users"]["envs"] == ["local", "dev"]
    # the users spend the demo credits: initial data; the models are reference data
    assert seeds["demo_users"]["initial"] == ["creditBalance"]
    assert "initial" not in seeds["ai_models"]
    assert 4 <= len(seeds["avatar_presets"]["rows"]) <= 6
    assert 4 <= len(seeds["persona_examples"]["rows"]) <= 6
    assert {r["category"] for r in seeds["persona_examples"]["rows"]} == {
        "business", "creative", "lifestyle"}
    models = {r["modelKey"]: (r["name"], r["tier"], r["creditCost"])
              for r in seeds["ai_models"]["rows"]}
    assert models == EXPECTED_MODELS
    assert sorted(r["displayOrder"] for r in seeds["ai_models"]["rows"]) == [1, 2, 3, 4]


def test_seeds_load_into_the_schema(conn):
    """Every seed row fits its table (columns, types, checks); keys are unique constraints;
    loading twice changes nothing; the app then sees the 4 models of incident 1."""
    env = environment("local")
    seeds = load_seeds()
    for name, seed in seeds.items():
        unique_keys = {tuple(cols) for (cols,) in conn.execute(
            """SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index i
               CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
               WHERE i.indrelid = %s::regclass AND i.indisunique
                 AND i.indpred IS NULL GROUP BY i.indexrelid""", [seed["table"]])}
        assert tuple(seed["key"]) in unique_keys, f"{name}: key is not a unique constraint"
        for row in seed["rows"]:
            for overrides in (seed.get("overrides") or {}).values():
                for override in overrides:
                    if all(override[k] == row[k] for k in seed["key"]):
                        upsert(conn, seed, {**row, **override})
            upsert(conn, seed, row)
    counts = {s["table"]: len(s["rows"]) for s in seeds.values()}
    assert len(counts) == len(seeds), "two seed files for one table"
    for _ in range(2):  # a second load is a no-op
        for seed in seeds.values():
            for row in seed["rows"]:
                upsert(conn, seed, row)
        for table, count in counts.items():
            assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(table))).fetchone()[0] == count, table

    with conn.transaction(force_rollback=True):
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(env.app_role)))
        rows = conn.execute(
            """SELECT "modelKey", name, tier, "creditCost", capabilities->>'modelId'
               FROM ai_models WHERE "appId" = 'avatar-creator' AND enabled
               ORDER BY "displayOrder" """).fetchall()
    assert {r[0]: r[1:4] for r in rows} == EXPECTED_MODELS
    assert all(r[4].startswith("black-forest-labs/FLUX.1-") for r in rows)
    assert conn.execute('SELECT name, "creditBalance" FROM users WHERE email = %s',
                        ["demo@avatar-creator.local"]).fetchone() == ("Demo User", 1000)


# --- data checks ---------------------------------------------------------------------------

def render_checks(env: Environment) -> dict[str, tuple[dict, str]]:
    renderer = Renderer(SQL_DIR, env)
    result = {}
    for path in sorted((SQL_DIR / "checks").glob("*.sql.j2")):
        text = renderer.render(path)
        header = dict(re.findall(r"^--\s*(description|severity|fix):\s*(.+?)\s*$", text, re.M))
        result[path.name.removesuffix(".sql.j2")] = (header, text)
    return result


@pytest.mark.parametrize("env_name", KNOWN_ENVS)
def test_checks_declare_a_description_severity_and_fix(env_name):
    checks = render_checks(environment(env_name))
    assert CHECKS <= set(checks)
    for name, (header, text) in checks.items():
        assert set(header) == {"description", "severity", "fix"}, name
        assert header["severity"] in {"error", "warning"}, name
        if name in CHECKS:
            assert header["severity"] == ("warning" if name == "stuck_generations" else "error")
        statements = migrations.split(text)
        assert len(statements) == 1, name
        assert statements[0].upper().startswith("SELECT"), name  # from its first token


def test_checks_pass_on_a_healthy_database_and_find_each_violation(conn):
    env = environment("local")
    checks = render_checks(env)
    def findings():
        return {name: [row[0] for row in conn.execute(text).fetchall()]
                for name, (_, text) in checks.items() if name in CHECKS}

    user = conn.execute("INSERT INTO users (email) VALUES ('u@example.test') RETURNING id"
                        ).fetchone()[0]
    project = conn.execute('INSERT INTO avatar_projects ("userId", name) VALUES (%s, %s) '
                           "RETURNING id", [user, "p"]).fetchone()[0]
    conn.execute('INSERT INTO avatars ("userId", "projectId", name, "baseImageUrl") '
                 "VALUES (%s, %s, 'ok', '/ok.png')", [user, project])
    for prompt, status, age in (("recent", "pending", "10 minutes"),
                                ("old but done", "completed", "3 hours")):
        conn.execute('INSERT INTO avatar_generations ("userId", "projectId", prompt, '
                     'status, "createdAt") VALUES (%s, %s, %s, %s, now() - %s::interval)',
                     [user, project, prompt, status, age])
    assert findings() == {name: [] for name in CHECKS}

    # Break what the constraints guard (the checks must not rely on them) and insert
    # one violating row per check.
    conn.execute("""
        ALTER TABLE avatars DROP CONSTRAINT "avatars_projectId_fkey",
            ALTER COLUMN "sourceType" DROP NOT NULL;
        ALTER TABLE avatar_generations DROP CONSTRAINT "avatar_generations_projectId_fkey";
        ALTER TABLE users DROP CONSTRAINT "users_creditBalance_check";
    """)
    conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(
        sql.Identifier(env.app_role)))
    orphan = conn.execute(
        'INSERT INTO avatars ("userId", "projectId", name, "baseImageUrl") '
        "VALUES (%s, 'gone', 'orphan', '/o.png') RETURNING id", [user]).fetchone()[0]
    no_source = conn.execute(
        'INSERT INTO avatars ("userId", "projectId", name, "baseImageUrl", "sourceType") '
        "VALUES (%s, %s, 'n', '/n.png', NULL) RETURNING id", [user, project]).fetchone()[0]
    broke = conn.execute('INSERT INTO users (email, "creditBalance") '
                         "VALUES ('broke@example.test', -5) RETURNING id").fetchone()[0]
    stuck = conn.execute(
        'INSERT INTO avatar_generations ("userId", "projectId", prompt, status, "createdAt")'
        " VALUES (%s, %s, 'stuck', 'processing', now() - interval '2 hours') RETURNING id",
        [user, project]).fetchone()[0]
    lost = conn.execute(
        'INSERT INTO avatar_generations ("userId", "projectId", prompt) '
        "VALUES (%s, 'gone', 'lost') RETURNING id", [user]).fetchone()[0]
    assert findings() == {
        "orphaned_avatars": [orphan],
        "avatar_required_nulls": [no_source],
        "negative_credit_balance": [broke],
        "stuck_generations": [stuck],
        "generations_without_project": [lost],
        "app_role_ddl_privileges": ["schema public"],
    }


# --- a relative --sql-dir, as operators type it -------------------------------------------

def test_engine_loads_a_relative_sql_dir(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert len(migrations.load("sql", environment("local"))) >= len(MIGRATIONS)
