"""Seeds against real PostgreSQL: idempotent upserts, check, the psql script, errors.

Each test creates its own tables in a fresh database and writes its own seed files.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import threading
from pathlib import Path

import psycopg
import pytest
import yaml

from shipshape.engine import seeds
from shipshape.errors import Busy, SQLFailed
from shipshape.settings import Environment

DEV = Environment(name="dev")

SCHEMA = """
CREATE TABLE ai_models (
    id            serial,
    "modelKey"    text PRIMARY KEY,
    "appId"       text NOT NULL,
    name          text,
    tier          text NOT NULL DEFAULT 'free',
    "creditCost"  integer NOT NULL CHECK ("creditCost" > 0),
    enabled       boolean NOT NULL DEFAULT true,
    capabilities  jsonb,
    "updatedBy"   text
);
CREATE TABLE tiers (name text PRIMARY KEY, rank integer NOT NULL);
"""

MODELS = """\
table: ai_models
key: [modelKey]
set: reference
rows:
  - modelKey: avatar-creator:flux-dev-base
    appId: avatar-creator
    name: FLUX.1-dev Base
    creditCost: 8
    enabled: true
    capabilities: {modelId: black-forest-labs/FLUX.1-dev, width: 512, height: 512,
                   guidanceScale: 3.5, loras: [], extra: null, hd: false}
  - modelKey: avatar-creator:flux-dev-realism
    appId: avatar-creator
    name: FLUX.1-dev + Realism LoRA
    tier: basic
    creditCost: 12
    enabled: true
  - modelKey: avatar-creator:flux-schnell-fast
    appId: avatar-creator
    creditCost: 6
"""

TIERS = """\
table: tiers
key: [name]
set: reference
rows:
  - {name: free, rank: 0}
  - {name: basic, rank: 1}
"""


def write(sql_dir: Path, name: str, text: str) -> Path:
    path = sql_dir / "seeds" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def db(fresh_dsn):
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return fresh_dsn


@pytest.fixture
def sql_dir(tmp_path):
    directory = tmp_path / "sql"
    write(directory, "10_tiers.yaml", TIERS)
    write(directory, "20_ai_models.yaml", MODELS)
    return directory


def run_apply(dsn, sql_dir, env=DEV):
    loaded = seeds.load(sql_dir, env)
    with psycopg.connect(dsn) as conn:
        results = seeds.apply(conn, env, loaded)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    totals: dict[str, tuple[int, int, int]] = {}
    for r in results:  # per table, summed over its files
        before = totals.get(r.table, (0, 0, 0))
        totals[r.table] = (before[0] + r.inserted, before[1] + r.updated, before[2] + r.unchanged)
    return totals


def run_check(dsn, sql_dir, env=DEV):
    loaded = seeds.load(sql_dir, env)
    with psycopg.connect(dsn) as conn:
        return {c.seed.table: c for c in seeds.check(conn, loaded)}


def fetch(dsn, query, *params):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def snapshot(dsn):
    return (fetch(dsn, "SELECT * FROM ai_models ORDER BY 2"),
            fetch(dsn, "SELECT * FROM tiers ORDER BY 1"))


def test_apply_twice_changes_nothing_the_second_time(db, sql_dir):
    assert run_apply(db, sql_dir) == {"tiers": (2, 0, 0), "ai_models": (3, 0, 0)}
    first = snapshot(db)
    versions = fetch(db, "SELECT xmin::text FROM ai_models ORDER BY 1")
    assert run_apply(db, sql_dir) == {"tiers": (0, 0, 2), "ai_models": (0, 0, 3)}
    assert snapshot(db) == first
    # an unchanged row is not even rewritten: no new row version
    assert fetch(db, "SELECT xmin::text FROM ai_models ORDER BY 1") == versions
    # column defaults fill what a row does not declare
    assert fetch(db, """SELECT tier, enabled, name FROM ai_models
                        WHERE "modelKey" = 'avatar-creator:flux-schnell-fast'""") == \
        [("free", True, None)]


def test_changed_value_is_updated_back(db, sql_dir):
    run_apply(db, sql_dir)
    with psycopg.connect(db) as conn:
        conn.execute("""UPDATE ai_models SET enabled = false, "creditCost" = 99
                        WHERE "modelKey" = 'avatar-creator:flux-dev-base'""")
    assert run_apply(db, sql_dir) == {"tiers": (0, 0, 2), "ai_models": (0, 1, 2)}
    assert fetch(db, """SELECT enabled, "creditCost" FROM ai_models
                        WHERE "modelKey" = 'avatar-creator:flux-dev-base'""") == [(True, 8)]


def test_rows_and_columns_the_seed_does_not_declare_are_left_alone(db, sql_dir):
    run_apply(db, sql_dir)
    with psycopg.connect(db) as conn:
        conn.execute("""INSERT INTO ai_models ("modelKey", "appId", "creditCost", enabled)
                        VALUES ('app:custom', 'app', 3, false)""")
        conn.execute("""UPDATE ai_models SET "updatedBy" = 'admin panel', name = 'Renamed'
                        WHERE "modelKey" = 'avatar-creator:flux-schnell-fast'""")
    assert run_apply(db, sql_dir)["ai_models"] == (0, 0, 3)
    assert fetch(db, """SELECT "appId", "creditCost", enabled FROM ai_models
                        WHERE "modelKey" = 'app:custom'""") == [("app", 3, False)]
    # the seed row does not declare name or updatedBy: the app's values stay
    assert fetch(db, """SELECT name, "updatedBy" FROM ai_models
                        WHERE "modelKey" = 'avatar-creator:flux-schnell-fast'""") == \
        [("Renamed", "admin panel")]
    # and check() is about declared rows and columns only
    assert run_check(db, sql_dir)["ai_models"].healthy


def test_jsonb_values_round_trip(db, sql_dir):
    capabilities = {"modelId": "black-forest-labs/FLUX.1-dev", "width": 512, "height": 512,
                    "guidanceScale": 3.5, "loras": [], "extra": None, "hd": False}
    write(sql_dir, "30_more.yaml", """\
        table: ai_models
        key: [modelKey]
        set: reference
        rows:
          - modelKey: x:list
            appId: x
            creditCost: 1
            capabilities: [1, "two", {three: [3.0, "é ✓ \\\\ ' \\""]}]
        """)
    run_apply(db, sql_dir)
    rows = dict(fetch(db, """SELECT "modelKey", capabilities FROM ai_models
                             WHERE capabilities IS NOT NULL"""))
    assert rows["avatar-creator:flux-dev-base"] == capabilities
    assert rows["x:list"] == [1, "two", {"three": [3.0, "é ✓ \\ ' \""]}]
    assert fetch(db, """SELECT jsonb_typeof(capabilities) FROM ai_models
                        WHERE "modelKey" = 'x:list'""") == [("array",)]
    loaded = seeds.load(sql_dir, DEV)
    with psycopg.connect(db) as conn:
        assert all(c.healthy for c in seeds.check(conn, loaded))
    assert run_apply(db, sql_dir)["ai_models"] == (0, 0, 4)


def test_check_reports_missing_rows_differing_columns_and_missing_table(db, sql_dir):
    write(sql_dir, "30_plans.yaml", "table: plans\nkey: [id]\nset: reference\nrows: [{id: 1}]\n")
    checks = run_check(db, sql_dir)
    assert checks["ai_models"].summary() == (
        "ai_models: 0 of 3 declared rows present (missing avatar-creator:flux-dev-base, "
        "avatar-creator:flux-dev-realism, avatar-creator:flux-schnell-fast)")
    assert checks["plans"].error.startswith("table plans does not exist")
    assert checks["plans"].summary().startswith("plans: table plans does not exist")

    (sql_dir / "seeds" / "30_plans.yaml").unlink()
    run_apply(db, sql_dir)
    with psycopg.connect(db) as conn:
        conn.execute("""UPDATE ai_models SET enabled = false, capabilities = '{"width": 1}'
                        WHERE "modelKey" = 'avatar-creator:flux-dev-base'""")
        conn.execute("""DELETE FROM ai_models
                        WHERE "modelKey" = 'avatar-creator:flux-schnell-fast'""")
    check = run_check(db, sql_dir)["ai_models"]
    assert (check.total, check.ok) == (3, 1)
    assert check.missing == [("avatar-creator:flux-schnell-fast",)]
    assert {(d[0][0], d[1], d[3] if d[1] == "enabled" else None) for d in check.differing} == {
        ("avatar-creator:flux-dev-base", "enabled", False),
        ("avatar-creator:flux-dev-base", "capabilities", None)}
    summary = check.summary()
    assert summary.startswith("ai_models: 1 of 3 rows equal; missing "
                              "avatar-creator:flux-schnell-fast; avatar-creator:flux-dev-base: ")
    assert "enabled is false, expected true" in summary
    assert 'capabilities is {"width": 1}, expected {' in summary
    assert run_check(db, sql_dir)["tiers"].healthy


def test_check_is_read_only_and_keeps_the_transaction_usable(db, sql_dir):
    write(sql_dir, "30_plans.yaml", "table: plans\nkey: [id]\nset: reference\nrows: [{id: 1}]\n")
    write(sql_dir, "40_typo.yaml", "table: tiers\nkey: [name]\nset: demo\n"
                                  "rows: [{name: pro, rnak: 2}]\n")
    loaded = seeds.load(sql_dir, DEV)
    with psycopg.connect(db) as conn:
        conn.execute("SELECT 1")  # the caller's own transaction is open
        results = seeds.check(conn, loaded)
        assert conn.execute("SELECT count(*) FROM tiers").fetchone() == (0,)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    by_file = {c.seed.path.name: c for c in results}
    assert by_file["30_plans.yaml"].error.startswith("table plans does not exist")
    assert by_file["40_typo.yaml"].error.startswith("table tiers has no column 'rnak'")
    assert by_file["20_ai_models.yaml"].missing and by_file["20_ai_models.yaml"].error is None


def test_composite_key_enum_and_numeric(fresh_dsn, tmp_path):
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("""CREATE TYPE tier AS ENUM ('free', 'pro');
                        CREATE TABLE prices (app text, plan tier, amount numeric(8,2),
                                             meta jsonb, PRIMARY KEY (app, plan))""")
    write(tmp_path, "prices.yaml", """\
        table: prices
        key: [app, plan]
        set: reference
        rows:
          - {app: a, plan: free, amount: 0, meta: {note: gratis}}
          - {app: a, plan: pro, amount: 9.5, meta: [1, 2]}
        """)
    assert run_apply(fresh_dsn, tmp_path) == {"prices": (2, 0, 0)}
    assert run_check(fresh_dsn, tmp_path)["prices"].healthy
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("UPDATE prices SET amount = 10 WHERE plan = 'pro'")
    check = run_check(fresh_dsn, tmp_path)["prices"]
    assert check.summary() == "prices: 1 of 2 rows equal; (a, pro): amount is 10.00, expected 9.5"


def test_injection_attempts_are_stored_verbatim(db, tmp_path):
    names = ["x'); DROP TABLE tiers; --", "back\\slash \\' E'quote\nnew line", '"; --']
    write(tmp_path, "evil.yaml", yaml.safe_dump({
        "table": "tiers", "key": ["name"], "set": "reference",
        "rows": [{"name": name, "rank": i} for i, name in enumerate(names)]}))
    run_apply(db, tmp_path)
    assert [r[0] for r in fetch(db, "SELECT name FROM tiers ORDER BY rank")] == names
    assert fetch(db, "SELECT to_regclass('tiers') IS NOT NULL") == [(True,)]
    assert run_apply(db, tmp_path) == {"tiers": (0, 0, 3)}
    assert run_check(db, tmp_path)["tiers"].healthy
    # the psql script quotes them just as safely
    with psycopg.connect(db) as conn:
        conn.execute("TRUNCATE tiers")
    run_psql(db, seeds.script(seeds.load(tmp_path, DEV)), tmp_path)
    assert [r[0] for r in fetch(db, "SELECT name FROM tiers ORDER BY rank")] == names


def psql_path() -> str:
    path = shutil.which("psql")
    if not path:
        pytest.fail("the psql client is required (apt-get install postgresql-client)")
    return path


def run_psql(dsn: str, text: str, tmp_path: Path, check: bool = True):
    script_file = tmp_path / "seed.sql"
    script_file.write_text(text)
    result = subprocess.run(
        [psql_path(), dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script_file)],
        capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_script_run_with_psql_gives_the_same_rows_as_apply(db, sql_dir, tmp_path):
    env = Environment(name="prod", seed_sets=("reference",), lock_timeout="2s")
    write(sql_dir, "20_ai_models.yaml", MODELS + textwrap.dedent("""\
        overrides:
          prod:
            - {modelKey: avatar-creator:flux-dev-realism, enabled: false}
        """))
    loaded = seeds.load(sql_dir, env)
    text = seeds.script(loaded, env=env)
    assert text.count("BEGIN;") == 1 and text.rstrip().endswith("COMMIT;")
    assert "-- " + str(sql_dir / "seeds" / "20_ai_models.yaml") in text
    assert "SET LOCAL lock_timeout = '2s';" in text

    run_psql(db, text, tmp_path)
    by_psql = snapshot(db)
    run_psql(db, text, tmp_path)  # idempotent in psql too
    assert snapshot(db) == by_psql
    assert run_apply(db, sql_dir, env) == {"tiers": (0, 0, 2), "ai_models": (0, 0, 3)}

    with psycopg.connect(db) as conn:
        conn.execute("TRUNCATE ai_models, tiers RESTART IDENTITY")
    assert run_apply(db, sql_dir, env) == {"tiers": (2, 0, 0), "ai_models": (3, 0, 0)}
    assert snapshot(db) == by_psql
    assert fetch(db, """SELECT enabled FROM ai_models
                        WHERE "modelKey" = 'avatar-creator:flux-dev-realism'""") == [(False,)]


def test_failing_script_writes_nothing(db, sql_dir, tmp_path):
    write(sql_dir, "30_bad.yaml", "table: ai_models\nkey: [modelKey]\nset: reference\n"
                                  "rows: [{modelKey: bad, appId: a, creditCost: 0}]\n")
    result = run_psql(db, seeds.script(seeds.load(sql_dir, DEV)), tmp_path, check=False)
    assert result.returncode != 0 and "ai_models_creditCost_check" in result.stderr
    assert snapshot(db) == ([], [])


@pytest.mark.parametrize("bad, server_message", [
    ("table: ai_models\nkey: [modelKey]\nset: reference\n"
     "rows: [{modelKey: ok, appId: a, creditCost: 1}, {modelKey: bad, appId: a, creditCost: 0}]\n",
     'violates check constraint "ai_models_creditCost_check"'),
    ("table: ai_models\nkey: [modelKey]\nset: reference\n"
     "rows: [{modelKey: ok, appId: a, creditCost: 1}, {modelKey: bad, appId: a, colour: red}]\n",
     'column "colour" of relation "ai_models" does not exist'),
    ("table: plans\nkey: [id]\nset: reference\nrows: [{id: bad}]\n",
     'relation "plans" does not exist'),
    ("table: tiers\nkey: [rank]\nset: reference\nrows: [{rank: 5, name: bad}]\n",
     "key [rank] must be exactly the columns of a unique index or constraint of tiers"),
])
def test_sql_error_names_file_row_and_message_and_writes_nothing(db, sql_dir, bad, server_message):
    path = write(sql_dir, "30_bad.yaml", bad)
    with pytest.raises(SQLFailed) as info:
        run_apply(db, sql_dir)
    message = str(info.value)
    assert info.value.exit_code == 6
    assert f"Seed {path} failed at row " in message
    assert ("row bad of table" in message) or ("row 5 of table" in message)
    assert server_message in message
    assert "rolled back" in message
    assert snapshot(db) == ([], [])  # not even the valid files before it


def test_lock_timeout_is_busy_and_nothing_is_written(db, sql_dir):
    env = Environment(name="dev", lock_timeout="100ms", lock_retries=1,
                      lock_retry_backoff="10ms")
    holder = psycopg.connect(db)
    try:
        holder.execute("LOCK TABLE ai_models IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(Busy) as info:
            run_apply(db, sql_dir, env)
        assert info.value.exit_code == 4
        assert "lock_timeout=100ms, 2 attempts" in str(info.value)
    finally:
        holder.rollback()
        holder.close()
    assert snapshot(db) == ([], [])


def test_concurrent_applies_do_not_conflict(db, sql_dir):
    errors = []

    def worker():
        try:
            run_apply(db, sql_dir)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(fetch(db, "SELECT 1 FROM ai_models")) == 3


def test_identifiers_are_quoted(fresh_dsn, tmp_path):
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute('''CREATE SCHEMA "App"; CREATE TABLE "App"."odd ""t"" name"
                        ("k; DROP TABLE x" text PRIMARY KEY, "Value\'s" integer)''')
    write(tmp_path, "odd.yaml", yaml.safe_dump({
        "table": 'App.odd "t" name', "key": ["k; DROP TABLE x"], "set": "reference",
        "rows": [{"k; DROP TABLE x": "a", "Value's": 1}]}))
    assert run_apply(fresh_dsn, tmp_path) == {'App.odd "t" name': (1, 0, 0)}
    assert run_check(fresh_dsn, tmp_path)['App.odd "t" name'].healthy
    run_psql(fresh_dsn, seeds.script(seeds.load(tmp_path, DEV)), tmp_path)
    assert fetch(fresh_dsn, 'SELECT * FROM "App"."odd ""t"" name"') == [("a", 1)]


# --- initial data: inserted when missing, never overwritten, never compared ---------------

WALLETS = """\
table: wallets
key: [owner]
set: demo
initial: [balance, nickname]
rows:
  - {owner: demo, balance: 1000, nickname: Demo, plan: free}
  - {owner: only-initial, balance: 5}
"""


@pytest.fixture
def wallets(fresh_dsn, tmp_path):
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE wallets (owner text PRIMARY KEY, balance integer NOT NULL, "
                     "nickname text, plan text)")
    directory = tmp_path / "sql"
    write(directory, "wallets.yaml", WALLETS)
    return fresh_dsn, directory


def test_initial_columns_are_inserted_with_a_new_row(wallets):
    dsn, sql_dir = wallets
    assert run_apply(dsn, sql_dir) == {"wallets": (2, 0, 0)}
    assert fetch(dsn, "SELECT owner, balance, nickname, plan FROM wallets ORDER BY 1") == [
        ("demo", 1000, "Demo", "free"), ("only-initial", 5, None, None)]
    assert run_check(dsn, sql_dir)["wallets"].healthy


def test_a_users_change_to_initial_data_survives_apply_and_is_not_a_finding(wallets):
    dsn, sql_dir = wallets
    run_apply(dsn, sql_dir)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE wallets SET balance = balance - 8, nickname = 'Me'")
    check = run_check(dsn, sql_dir)["wallets"]
    assert check.healthy, check.summary()
    assert (check.ok, check.differing) == (2, [])
    assert run_apply(dsn, sql_dir) == {"wallets": (0, 0, 2)}
    assert fetch(dsn, "SELECT owner, balance, nickname FROM wallets ORDER BY 1") == [
        ("demo", 992, "Me"), ("only-initial", -3, "Me")]


def test_reference_columns_next_to_initial_ones_are_still_compared_and_restored(wallets):
    dsn, sql_dir = wallets
    run_apply(dsn, sql_dir)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE wallets SET plan = 'pro', balance = 1")
    check = run_check(dsn, sql_dir)["wallets"]
    assert check.differing == [(("demo",), "plan", "free", "pro")]
    assert run_apply(dsn, sql_dir) == {"wallets": (0, 1, 1)}
    assert fetch(dsn, "SELECT balance, plan FROM wallets WHERE owner = 'demo'") == [(1, "free")]


def test_a_missing_row_with_initial_data_is_a_finding_and_inserted_again(wallets):
    dsn, sql_dir = wallets
    run_apply(dsn, sql_dir)
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM wallets WHERE owner = 'demo'")
    assert run_check(dsn, sql_dir)["wallets"].missing == [("demo",)]
    assert run_apply(dsn, sql_dir) == {"wallets": (1, 0, 1)}
    assert fetch(dsn, "SELECT balance FROM wallets WHERE owner = 'demo'") == [(1000,)]


def test_the_psql_script_leaves_initial_data_alone_too(wallets, tmp_path):
    dsn, sql_dir = wallets
    run_apply(dsn, sql_dir)
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE wallets SET balance = 7, plan = 'pro'")
    run_psql(dsn, seeds.script(seeds.load(sql_dir, DEV)), tmp_path)
    assert fetch(dsn, "SELECT owner, balance, plan FROM wallets ORDER BY 1") == [
        ("demo", 7, "free"), ("only-initial", 7, "pro")]  # plan: not declared there
