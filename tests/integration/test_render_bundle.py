"""`invoke render` output, run with the real psql client: what a DBA would do by hand."""

from __future__ import annotations

import shutil
import subprocess

import psycopg
import pytest

from shipshape.engine import catalog
from tests.conftest import run_invoke

pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="needs the psql client")


def psql(dsn, path):
    return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(path)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def rendered(tmp_path, admin_dsn):
    def render(env):
        out = tmp_path / env
        result = run_invoke("render", "--env", env, "--out", str(out), "--dsn", admin_dsn,
                            env={"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")})
        assert result.returncode == 0, result.stderr
        return out
    return render


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_rendered_files_apply_verify_and_roll_back_with_psql(rendered, fresh_dsn, env):
    out = rendered(env)
    assert sorted(p.name for p in out.iterdir()) == ["migrate.sql", "rollback.sql", "seed.sql", "verify.sql"]
    migrate_sql = (out / "migrate.sql").read_text()
    if env == "prod":
        assert "CREATE INDEX CONCURRENTLY" in migrate_sql
    else:
        assert "INDEX CONCURRENTLY" not in migrate_sql

    for name in ("migrate.sql", "seed.sql"):
        result = psql(fresh_dsn, out / name)
        assert result.returncode == 0, result.stderr
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:  # the demo user (dev) spends
        spent = conn.execute('UPDATE users SET "creditBalance" = 992').rowcount
    assert spent == (1 if env == "dev" else 0)
    verified = psql(fresh_dsn, out / "verify.sql")  # initial data: not compared
    assert verified.returncode == 0, verified.stderr
    assert "✗" not in verified.stdout and verified.stdout.count("✓") > 150
    assert "all" in verified.stderr and "expected objects present" in verified.stderr

    # psql applied what the engine would: history rows, and nothing left for deploy to do.
    status = run_invoke("db.status", "--env", env, "--dsn", fresh_dsn)
    assert status.returncode == 0, status.stdout + status.stderr
    again = psql(fresh_dsn, out / "migrate.sql")  # idempotent: applied ones are skipped
    assert again.returncode == 0, again.stderr

    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute('ALTER TABLE avatars DROP COLUMN "personaName"')
        conn.execute("UPDATE ai_models SET enabled = false")
    broken = psql(fresh_dsn, out / "verify.sql")
    assert broken.returncode == 3
    assert "✗ | column     | avatars.personaName text" in broken.stdout
    assert "ai_models avatar-creator:flux-dev-base" in broken.stdout
    assert "expected objects are missing or different" in broken.stderr

    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute('ALTER TABLE avatars ADD COLUMN "personaName" text')
    rolled_back = psql(fresh_dsn, out / "rollback.sql")
    assert rolled_back.returncode == 0, rolled_back.stderr
    with psycopg.connect(fresh_dsn) as conn:
        assert catalog.snapshot(conn)["tables"] == {}
        assert conn.execute("SELECT count(*) FROM shipshape.history").fetchone()[0] == 0


def test_rendered_files_hold_no_secret(tmp_path, admin_dsn):
    out = tmp_path / "out"
    result = run_invoke("render", "--env", "dev", "--out", str(out),
                        "--dsn", admin_dsn + (" password=Render-Secret-77" if "://" not in admin_dsn else ""),
                        env={"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 0, result.stderr
    assert "Render-Secret-77" not in result.stdout + result.stderr
    for path in out.iterdir():
        text = path.read_text().lower()
        assert "password=" not in text and "postgresql://" not in text and "postgres://" not in text
    assert "demo@avatar-creator.local" in (out / "seed.sql").read_text()


def test_render_without_dsn_uses_an_embedded_server(tmp_path):
    out = tmp_path / "out"
    result = run_invoke("render", "--env", "staging", "--out", str(out),
                        env={"SHIPSHAPE_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 0, result.stderr
    assert "demo@" not in (out / "seed.sql").read_text()  # demo data is not for staging
    assert "ai_models" in (out / "verify.sql").read_text()
