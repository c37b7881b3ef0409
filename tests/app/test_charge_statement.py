"""The credit charge refuses an overdraft by itself (app/store.py CHARGE_SQL: one UPDATE
whose WHERE re-checks the balance once it holds the row lock), not because the CHECK
constraint on users."creditBalance" turns an overdraft into an error.

So the constraint is dropped in a database of this module's own, and the race that the
50-concurrent-requests test hopes to provoke is made at a barrier: a second connection
holds the user's row with a charge of its own, the request's charge is seen waiting for
it in pg_stat_activity, then the other charge commits. The request must answer 402 and
leave the balance the other charge left.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.app.conftest import AppProcess, Stack, app_dsn

COST = 8  # the cheapest enabled model, avatar-creator:flux-dev-base


@pytest.fixture(scope="module")
def unchecked(admin_dsn, app_login, databases, tmp_path_factory):
    """The placeholder app on a deployed database without the credit balance's CHECK."""
    role, _ = app_login
    dsn = databases()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute('ALTER TABLE users DROP CONSTRAINT "users_creditBalance_check"')
    app = AppProcess(app_dsn(admin_dsn, dsn, role),
                     tmp_path_factory.mktemp("logs-unchecked") / "app.log").start()
    yield Stack(dsn, dsn, app)
    app.stop()


def generations(stack, user) -> int:
    return stack.sql('SELECT count(*) FROM avatar_generations WHERE "userId" = %s',
                     [user.id])[0][0]


def generate(user, project):
    return user.post(f"/projects/{project['id']}/avatars/generate", json={"prompt": "a portrait"})


def test_the_constraint_is_really_gone(unchecked):
    assert unchecked.sql("SELECT count(*) FROM pg_constraint WHERE conname = "
                         "'users_creditBalance_check'") == [(0,)]


def test_an_overdraft_is_402_without_the_constraint(unchecked):
    user = unchecked.user(credits=COST - 3)
    project = user.project()
    response = generate(user, project)
    assert response.status_code == 402, response.text
    assert response.json()["error"]["creditBalance"] == COST - 3
    assert unchecked.balance(user.id) == COST - 3 and generations(unchecked, user) == 0


def test_the_last_credits_can_be_spent_once(unchecked):
    user = unchecked.user(credits=COST)
    project = user.project()
    first, second = generate(user, project), generate(user, project)
    assert (first.status_code, second.status_code) == (200, 402), (first.text, second.text)
    assert first.json()["creditBalance"] == 0
    assert unchecked.balance(user.id) == 0 and generations(unchecked, user) == 1


def test_a_charge_that_waited_for_another_re_checks_the_balance(unchecked):
    user = unchecked.user(credits=COST + 2)
    project = user.project()
    other = psycopg.connect(unchecked.admin_dsn, application_name="the other charge")
    try:
        other.execute('UPDATE users SET "creditBalance" = "creditBalance" - %s WHERE id = %s',
                      [COST, user.id])  # holds the row; not committed yet
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(generate, user, project)
            deadline = time.monotonic() + 30
            while not unchecked.sql(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query ILIKE '%%UPDATE users%%' AND pid <> %s",
                    [other.info.backend_pid]):
                assert not pending.done(), pending.result().text
                assert time.monotonic() < deadline, "the request's charge never waited"
                time.sleep(0.01)
            # the request holds the balance it read before (if it read one), and waits
            other.commit()
            response = pending.result(timeout=30)
    finally:
        other.close()
    assert response.status_code == 402, response.text
    assert unchecked.balance(user.id) == 2 and generations(unchecked, user) == 0
