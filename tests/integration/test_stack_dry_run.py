"""`--dry-run` on the tasks that start and stop the local stack: they say what they would
do and change nothing: no server created or started, no app started or stopped."""

from __future__ import annotations

import pytest

from tests.conftest import run_invoke


@pytest.mark.parametrize("command, said", [
    (("up", "--dry-run"), "would be created (initdb) and started"),
    (("down", "-n"), "the embedded PostgreSQL is not running"),
    (("app.start", "--dry-run"), "the embedded PostgreSQL, which would be started first"),
    (("app.stop", "-n"), "the app is not running"),
])
def test_a_dry_run_on_a_fresh_machine_starts_nothing(tmp_path, command, said):
    state = tmp_path / "state"
    result = run_invoke(*command, env={"SHIPSHAPE_STATE_DIR": str(state)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert said in result.stdout
    assert not (state / "local" / "pgdata").exists(), f"{command} created a server"
    assert not (state / "app").exists() or not any((state / "app").iterdir()), \
        f"{command} started the app"
