"""Incident replays: a database freshly deployed by shipshape.pipeline.deploy from the
shipped sql/ tree, broken the way the incident record describes, diagnosed by doctor,
repaired by the runbook doctor names, then verified clean. Real PostgreSQL, nothing mocked.

Every runbook run goes through Incident.run, which proves that no committed row
disappeared except the rows the runbook said it deletes (a fix step declared
`destructive`, whose rows the plan listed).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from shipshape.db import connect
from shipshape.engine import verify
from shipshape.errors import ShipshapeError
from shipshape.ops import doctor, pipeline, runbooks, triage
from shipshape.progress import Progress
from tests.conftest import ROOT

SQL_DIR = ROOT / "sql"
APP_ROLE = "avatar_app"


@pytest.fixture(scope="session", autouse=True)
def incident_state_dir(session_state_dir):
    """One shadow-snapshot cache for every replay (each prefix of the migrations is built
    once per session), kept out of the repository."""
    return session_state_dir


@pytest.fixture(scope="session")
def shipped_runbooks():
    return runbooks.load(ROOT / "runbooks", sql_dir=SQL_DIR)


class Incident:
    """One deployed database of the Avatar Creator, and the hands that break and fix it."""

    def __init__(self, dsn: str, target, reports: Path, books):
        self.dsn = dsn
        self.target = target
        self.env = target.env
        self.reports = reports
        self.books = books
        self.sql_dir = SQL_DIR
        self.ids: dict[str, str] = {}

    # the hand that breaks things
    def sql(self, query, params=None):
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else None

    def deploy(self, sql_dir: Path | None = None):
        return pipeline.deploy(self.target, sql_dir or self.sql_dir)

    def populate(self) -> dict[str, str]:
        """A user's data in every table: what no runbook may lose."""
        (user,) = self.sql("INSERT INTO users (email, name, \"creditBalance\") VALUES "
                           "(%s, 'Incident User', 500) RETURNING id",
                           [f"incident-{uuid.uuid4().hex[:8]}@example.test"])[0]
        (project,) = self.sql("INSERT INTO avatar_projects (\"userId\", name) VALUES (%s, "
                              "'Professional Muda') RETURNING id", [user])[0]
        avatars = [self.sql("INSERT INTO avatars (\"userId\", \"projectId\", name, \"baseImageUrl\") "
                            "VALUES (%s, %s, %s, 'https://cdn.example.test/a.png') RETURNING id",
                            [user, project, name])[0][0] for name in ("Maya", "Ken")]
        (generation,) = self.sql("INSERT INTO avatar_generations (\"userId\", \"projectId\", "
                                 "\"avatarId\", status, prompt) VALUES (%s, %s, %s, 'completed', "
                                 "'a portrait') RETURNING id", [user, project, avatars[0]])[0]
        self.sql("INSERT INTO avatar_usage_history (\"avatarId\", \"userId\", \"appId\", action) "
                 "VALUES (%s, %s, 'avatar-creator', 'uploaded')", [avatars[0], user])
        self.ids = {"user": user, "project": project, "avatar": avatars[0],
                    "avatar2": avatars[1], "generation": generation}
        return self.ids

    def rows(self) -> dict[str, set]:
        """Every row of every application table, by primary key."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'id' "
                "WHERE n.nspname = 'public' AND c.relkind = 'r'").fetchall()]
            return {t: {r[0] for r in conn.execute(
                sql.SQL("SELECT id FROM {}").format(sql.Identifier(t))).fetchall()}
                for t in tables}

    # doctor and the runbooks
    def doctor(self, long_transaction: str = doctor.DEFAULT_LONG_TRANSACTION, sql_dir=None):
        diagnosis = doctor.diagnose(self.target, sql_dir or self.sql_dir,
                                    long_transaction=long_transaction)
        groups = triage.group(diagnosis.findings, self.books,
                              command=lambda b: runbooks.command(b, self.env.name))
        return diagnosis, groups

    def named(self, **kw) -> list[str]:
        """The runbooks doctor names, in the order it says to run them."""
        _, groups = self.doctor(**kw)
        return [g.runbook.id if g.runbook else None for g in groups]

    def findings(self, sql_dir: Path | None = None) -> list:
        with connect(self.target) as conn:
            return verify.verify(conn, self.target, sql_dir or self.sql_dir)

    def run(self, name: str, *, yes: bool = True, **kw):
        """runbooks.run, proving that no committed row was lost but the rows the runbook
        said it deletes (a done `destructive` step, whose plan listed each row)."""
        before = self.rows()
        usage_of = ({r[0]: r[1] for r in self.sql('SELECT id, "avatarId" FROM avatar_usage_history')}
                    if "avatar_usage_history" in before else {})
        kw.setdefault("reports_dir", self.reports)
        kw.setdefault("runbooks", self.books)
        sql_dir = kw.pop("sql_dir", self.sql_dir)
        result = None
        try:
            result = runbooks.run(self.target, sql_dir, name, yes=yes, progress=Progress(), **kw)
            return result
        except ShipshapeError as exc:
            result = exc.result
            raise
        finally:
            self._nothing_lost(name, before, usage_of, result)

    def _nothing_lost(self, name, before, usage_of, result) -> None:
        allowed: dict[str, set] = {}
        for step in (result.steps if result else []):
            if step.destructive and step.status == "done":
                assert len(step.preview) == step.preview_total  # every deleted row was listed
                for row in step.preview:
                    if "avatarId" in row and "generationId" not in row:
                        allowed.setdefault("avatars", set()).add(row["avatarId"])
                        # the cascade's rows: listed with their avatar when the fix lists them
                        listed = row.get("usageHistoryDeleted")
                        cascaded = {u for u, a in usage_of.items() if a == row["avatarId"]}
                        assert listed is None or set(listed) == cascaded
                        allowed.setdefault("avatar_usage_history", set()).update(cascaded)
                    else:
                        allowed.setdefault("avatar_generations", set()).add(row["generationId"])
        after = self.rows()
        for table, ids in before.items():
            lost = ids - after.get(table, set())
            assert lost <= allowed.get(table, set()), (
                f"runbook {name} lost rows of {table} it was not told to delete: {lost}")


@pytest.fixture
def incident(fresh_dsn, make_target, tmp_path, shipped_runbooks):
    """A freshly deployed dev database with a user's data in every table."""
    target = make_target(fresh_dsn, "dev")
    case = Incident(fresh_dsn, target, tmp_path / "reports", shipped_runbooks)
    result = case.deploy()
    assert result.exit_code == 0 and result.findings == []
    case.populate()
    return case


# --- the app, when its test helpers are there ---------------------------------------------

def app_helpers():
    """tests/app's helpers (AppProcess, Stack), or None when the app is not importable."""
    try:
        from tests.app import conftest as app_conftest
    except Exception:  # noqa: BLE001 - the app is another engineer's work in progress
        return None
    return app_conftest


@pytest.fixture(scope="session")
def app_login(admin_dsn):
    """A login role in the app role: the app runs with exactly the migrations' grants."""
    helpers = app_helpers()
    if helpers is None:
        pytest.skip("app/ is not importable: the route is checked through its SQL only")
    role = f"ss_incident_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname "
                             "= {role}) THEN CREATE ROLE {ident} NOLOGIN; END IF; END $$").format(
            role=sql.Literal(APP_ROLE), ident=sql.Identifier(APP_ROLE)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
            sql.Identifier(role), sql.Identifier(APP_ROLE)))
    yield role
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def app(incident, admin_dsn, app_login, tmp_path):
    """The Avatar Creator API serving the incident's database (started healthy)."""
    helpers = app_helpers()
    process = helpers.AppProcess(helpers.app_dsn(admin_dsn, incident.dsn, app_login),
                                 tmp_path / "app.log").start(ready=True)
    stack = helpers.Stack(incident.dsn, incident.dsn, process)
    yield stack
    stack.client.close()
    process.stop()


def ready(stack) -> tuple[int, dict]:
    response = stack.client.get("/health/ready")
    return response.status_code, response.json()


# The app's own model lookup (app/store.py pick_model): incident 1's query.
PICK_MODEL = ('SELECT "modelKey", "creditCost" FROM ai_models WHERE "appId" = %s AND enabled '
              'ORDER BY CASE tier WHEN \'free\' THEN 0 WHEN \'basic\' THEN 1 WHEN \'pro\' THEN 2 '
              'ELSE 3 END, "creditCost" LIMIT 1')
