"""The lock table: which locks a statement takes that block the application.

Each row is (relation, mode, rule, scans, rewrites), written from PostgreSQL's
documentation of the statement, never copied from output.
"""

import pytest
from pglast import parse_sql

from shipshape.engine.lockrules import SAFE_REWRITES, is_volatile
from shipshape.engine.sqlparse import classify

AE, SRE, SHARE = "ACCESS EXCLUSIVE", "SHARE ROW EXCLUSIVE", "SHARE"


def locks(sql: str) -> list[tuple]:
    return [(lock.relation, lock.mode, lock.rule, lock.scans, lock.rewrites)
            for statement in classify(sql) for lock in statement.locks]


LOCKS = [
    # Indexes
    ("CREATE INDEX users_email_idx ON users (email)",
     [("users", SHARE, "create-index-nonconcurrent", True, False)]),
    ("CREATE UNIQUE INDEX IF NOT EXISTS i ON public.users (email)",
     [("public.users", SHARE, "create-index-nonconcurrent", True, False)]),
    ("CREATE INDEX CONCURRENTLY i ON users (email)", []),
    ("DROP INDEX users_email_idx", [("users_email_idx", AE, "drop-index-nonconcurrent",
                                     False, False)]),
    ("DROP INDEX CONCURRENTLY users_email_idx", []),
    ("REINDEX TABLE users", [("users", SHARE, "reindex-nonconcurrent", True, False)]),
    ("REINDEX TABLE CONCURRENTLY users", []),
    # Foreign keys: both tables, validated unless NOT VALID
    ("ALTER TABLE orders ADD CONSTRAINT orders_uid_fkey FOREIGN KEY (uid) REFERENCES users (id)",
     [("orders", SRE, "add-fk-validating", True, False),
      ("users", SRE, "add-fk-validating", True, False)]),
    (("ALTER TABLE orders ADD CONSTRAINT orders_uid_fkey FOREIGN KEY (uid) "
     "REFERENCES users (id) NOT VALID"),
     [("orders", SRE, "brief-lock", False, False), ("users", SRE, "brief-lock", False, False)]),
    ("ALTER TABLE orders ADD COLUMN uid int REFERENCES users (id)",
     [("orders", AE, "add-fk-validating", True, False),
      ("users", SRE, "add-fk-validating", True, False)]),
    ("ALTER TABLE orders VALIDATE CONSTRAINT orders_uid_fkey", []),
    # CHECK and NOT NULL
    ("ALTER TABLE orders ADD CONSTRAINT total_positive CHECK (total >= 0)",
     [("orders", AE, "add-check-validating", True, False)]),
    ("ALTER TABLE orders ADD CONSTRAINT total_positive CHECK (total >= 0) NOT VALID",
     [("orders", AE, "brief-lock", False, False)]),
    ("ALTER TABLE users ALTER COLUMN email SET NOT NULL",
     [("users", AE, "set-not-null", True, False)]),
    ("ALTER TABLE users ADD CONSTRAINT email_not_null NOT NULL email",
     [("users", AE, "set-not-null", True, False)]),
    ("ALTER TABLE users ALTER COLUMN email DROP NOT NULL", [("users", AE, "brief-lock", False,
                                                            False)]),
    # Type changes and rewrites
    ("ALTER TABLE users ALTER COLUMN credits TYPE bigint",
     [("users", AE, "change-column-type", True, True)]),
    ("ALTER TABLE users ALTER credits SET DATA TYPE text USING credits::text",
     [("users", AE, "change-column-type", True, True)]),
    ("ALTER TABLE users SET UNLOGGED", [("users", AE, "alter-table-rewrite", True, True)]),
    ("ALTER TABLE users SET TABLESPACE fast", [("users", AE, "alter-table-rewrite", True, True)]),
    ("ALTER TABLE users ALTER total SET EXPRESSION AS (a + b)",
     [("users", AE, "set-generated-expression", True, True)]),
    ("VACUUM FULL users", [("users", AE, "vacuum-full", True, True)]),
    ("VACUUM (FULL, ANALYZE) a, b", [("a", AE, "vacuum-full", True, True),
                                     ("b", AE, "vacuum-full", True, True)]),
    ("VACUUM users", []),
    ("CLUSTER users USING users_pkey", [("users", AE, "cluster", True, True)]),
    ("REFRESH MATERIALIZED VIEW daily_stats",
     [("daily_stats", AE, "refresh-matview-nonconcurrent", True, True)]),
    ("REFRESH MATERIALIZED VIEW CONCURRENTLY daily_stats", []),
    # ADD COLUMN: volatile defaults rewrite, constant ones do not (PostgreSQL 11+)
    ("ALTER TABLE users ADD COLUMN r float8 DEFAULT random()",
     [("users", AE, "add-column-volatile-default", True, True)]),
    ("ALTER TABLE users ADD COLUMN seen timestamptz NOT NULL DEFAULT clock_timestamp()",
     [("users", AE, "add-column-volatile-default", True, True)]),
    ("ALTER TABLE users ADD COLUMN token text DEFAULT gen_random_uuid()::text",
     [("users", AE, "add-column-volatile-default", True, True)]),
    ("ALTER TABLE users ADD COLUMN n bigserial",
     [("users", AE, "add-column-volatile-default", True, True)]),
    ("ALTER TABLE users ADD COLUMN n int GENERATED ALWAYS AS IDENTITY",
     [("users", AE, "add-column-volatile-default", True, True)]),
    ("ALTER TABLE users ADD COLUMN twice int GENERATED ALWAYS AS (n * 2) STORED",
     [("users", AE, "add-column-generated", True, True)]),
    ("ALTER TABLE users ADD COLUMN score int NOT NULL DEFAULT 0",
     [("users", AE, "brief-lock", False, False)]),
    ("ALTER TABLE users ADD COLUMN at timestamptz NOT NULL DEFAULT now()",
     [("users", AE, "brief-lock", False, False)]),
    ("ALTER TABLE users ADD COLUMN at timestamptz DEFAULT CURRENT_TIMESTAMP",
     [("users", AE, "brief-lock", False, False)]),
    ("ALTER TABLE users ADD COLUMN meta jsonb NOT NULL DEFAULT '{}'::jsonb",
     [("users", AE, "brief-lock", False, False)]),
    ("ALTER TABLE users ADD COLUMN nick text", [("users", AE, "brief-lock", False, False)]),
    # UNIQUE, PRIMARY KEY, EXCLUDE build an index unless USING INDEX
    ("ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)",
     [("users", AE, "add-unique-constraint", True, False)]),
    ("ALTER TABLE users ADD PRIMARY KEY (id)", [("users", AE, "add-primary-key", True, False)]),
    ("ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx",
     [("users", AE, "brief-lock", False, False)]),
    ("ALTER TABLE rooms ADD CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&)",
     [("rooms", AE, "add-exclusion-constraint", True, False)]),
    # Brief catalog changes, and what blocks nothing
    ("ALTER TABLE users DROP COLUMN name", [("users", AE, "brief-lock", False, False)]),
    ("ALTER TABLE users ALTER name SET DEFAULT 'x', DROP CONSTRAINT c",
     [("users", AE, "brief-lock", False, False)]),
    ("ALTER TABLE users RENAME COLUMN name TO full_name",
     [("users", AE, "brief-lock", False, False)]),
    ("ALTER TABLE users SET SCHEMA archive", [("users", AE, "brief-lock", False, False)]),
    ("ALTER INDEX users_email_idx RENAME TO users_mail_idx", []),
    ("ALTER TABLE users DISABLE TRIGGER ALL", [("users", SRE, "brief-lock", False, False)]),
    ("ALTER TABLE users SET (fillfactor = 70)", []),
    ("ALTER TABLE users ALTER name SET STATISTICS 500", []),
    ("DROP TABLE a, b", [("a", AE, "brief-lock", False, False),
                         ("b", AE, "brief-lock", False, False)]),
    ("TRUNCATE sessions", [("sessions", AE, "brief-lock", False, False)]),
    ("CREATE TRIGGER touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch()",
     [("users", SRE, "brief-lock", False, False)]),
    (("CREATE TABLE orders (id int, uid int REFERENCES users (id), "
     "pid int, FOREIGN KEY (pid) REFERENCES shop.products (id))"),
     [("users", SRE, "brief-lock", False, False),
      ("shop.products", SRE, "brief-lock", False, False)]),
    ("LOCK TABLE users", [("users", AE, "explicit-lock", False, False)]),
    ("LOCK TABLE users IN SHARE MODE", [("users", SHARE, "explicit-lock", False, False)]),
    ("LOCK TABLE users IN ROW EXCLUSIVE MODE", []),
    ("ALTER TABLE p ATTACH PARTITION p_2024 FOR VALUES FROM (1) TO (10)",
     [("p_2024", AE, "attach-partition-validating", True, False)]),
    ("SELECT * FROM users", []),
    ("UPDATE users SET name = 'x'", []),
    ("DELETE FROM users", []),
    ("GRANT SELECT ON users TO app", []),
]


@pytest.mark.parametrize("sql,expected", LOCKS, ids=[s for s, _ in LOCKS])
def test_lock_table(sql, expected):
    assert locks(sql) == expected


def test_one_alter_table_holds_its_strongest_lock_for_every_scan():
    # The FK's validation scan runs under the ACCESS EXCLUSIVE that SET DEFAULT needs.
    sql = ("ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (uid) REFERENCES users (id), "
           "ALTER note SET DEFAULT ''")
    assert locks(sql) == [("orders", AE, "add-fk-validating", True, False),
                          ("users", SRE, "add-fk-validating", True, False)]


def test_several_scans_in_one_alter_table_are_each_named_once():
    sql = ("ALTER TABLE users ALTER a SET NOT NULL, ALTER b SET NOT NULL, "
           "ADD CHECK (c > 0), ADD COLUMN d text")
    assert locks(sql) == [("users", AE, "set-not-null", True, False),
                          ("users", AE, "add-check-validating", True, False)]


def test_relations_created_in_the_same_input_take_no_lock_concern():
    sql = """
        CREATE TABLE accounts (id int PRIMARY KEY, email text);
        CREATE TABLE public.orders (id int, aid int REFERENCES accounts (id));
        CREATE INDEX orders_aid_idx ON orders (aid);
        ALTER TABLE orders ADD CONSTRAINT total CHECK (id > 0), ALTER aid SET NOT NULL;
        ALTER TABLE accounts ADD CONSTRAINT accounts_email_key UNIQUE (email);
        DROP INDEX orders_aid_idx;
        CREATE INDEX users_email_idx ON users (email);
    """
    assert locks(sql) == [("users", SHARE, "create-index-nonconcurrent", True, False)]


def test_locks_inside_a_do_block_are_the_blocks():
    sql = "DO $$ BEGIN CREATE INDEX i ON users (email); EXECUTE 'TRUNCATE t'; END $$"
    assert locks(sql) == [("users", SHARE, "create-index-nonconcurrent", True, False),
                          ("t", AE, "brief-lock", False, False)]


def test_a_function_body_takes_no_lock_when_defined():
    sql = "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'CREATE INDEX i ON users (a)'"
    [definition] = classify(sql)
    assert definition.locks == ()
    assert [lock.rule for lock in definition.inner[0].locks] == ["create-index-nonconcurrent"]


def test_every_lock_carries_its_rules_safe_rewrite():
    for sql, _ in LOCKS:
        for statement in classify(sql):
            for lock in statement.locks:
                assert lock.safe_rewrite == SAFE_REWRITES[lock.rule]


def test_every_rule_has_a_paragraph():
    for rule, text in SAFE_REWRITES.items():
        assert rule == rule.lower() and " " not in rule
        assert len(text) > 80 and text.endswith("."), rule


def default_of(expression: str):
    [raw] = parse_sql(f"SELECT {expression}")
    return raw.stmt.targetList[0].val


@pytest.mark.parametrize("expression,volatile", [
    ("0", False),
    ("'x'", False),
    ("'{}'::jsonb", False),
    ("now()", False),
    ("CURRENT_TIMESTAMP", False),
    ("lower('X') || 'y'", False),
    ("jsonb_build_object('a', 1)", False),
    ("random()", True),
    ("clock_timestamp()", True),
    ("gen_random_uuid()", True),
    ("gen_random_uuid()::text", True),
    ("nextval('s')", True),
    ("coalesce(NULL, random())", True),
    ("my_function()", True),  # unknown without the catalog: could be volatile
])
def test_volatile_defaults(expression, volatile):
    assert is_volatile(default_of(expression)) is volatile
