"""Progress as an operator reads it: ✓ only for success, ! for findings, ✗ for failure,
and no thread per step (a long run must not pay for a spinner per migration)."""

from __future__ import annotations

import io
import threading

import pytest

from shipshape.console import ConsoleProgress


def test_marks_follow_the_outcome():
    stream = io.StringIO()
    progress = ConsoleProgress(stream)
    with progress.step("connection") as step:
        step.note("connected")
    with progress.step("schema against a shadow database") as step:
        step.found("4 difference(s)")
    with pytest.raises(RuntimeError), progress.step("seed"):
        raise RuntimeError("boom")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("✓ connection") and lines[0].endswith("connected")
    assert lines[1].startswith("! schema against a shadow database")
    assert "4 difference(s)" in lines[1] and "✓" not in lines[1]
    assert lines[2].startswith("✗ seed")


def test_nested_steps_are_indented_under_their_parent():
    stream = io.StringIO()
    progress = ConsoleProgress(stream)
    with progress.step("migrate"):
        with progress.step("0001_init") as inner:
            inner.note("3 ms in SQL")
    first, second = stream.getvalue().splitlines()
    assert first.startswith("  ✓ 0001_init") and second.startswith("✓ migrate")


def test_a_thousand_steps_start_no_thread():
    before = threading.active_count()
    progress = ConsoleProgress(io.StringIO())
    for number in range(1000):
        with progress.step(f"migration {number}"):
            assert threading.active_count() == before
    progress.close()


def test_lines_are_redacted():
    from shipshape.secrets import register_secret

    register_secret("hunter2-secret")
    stream = io.StringIO()
    progress = ConsoleProgress(stream)
    with progress.step("connect") as step:
        step.note("postgresql://u:hunter2-secret@db/x")
    progress.info("password=hunter2-secret")
    assert "hunter2-secret" not in stream.getvalue()


def _fleet_run():
    from shipshape.ops.fleets.running import FleetRun, Outcome

    outcomes = {name: Outcome(name, wave, f"postgresql://u:***@h/{name} (env dev)")
                for name, wave in (("a", "canary"), ("b", "rest"), ("c", "rest"))}
    return FleetRun(fleet="t", fleet_file="t.yaml", env="dev", sql_dir="sql", run_id="t/dev/abc",
                    tree_checksum="abc" * 20, shard=None, parallel=2, max_failures=1,
                    waves=[("canary", ["a"]), ("rest", ["b", "c"])], outcomes=outcomes)


def _drive(watcher, run):
    watcher.start(run)
    watcher.wave(run, "canary")
    a, b, c = run.outcomes.values()
    a.status, a.from_version, a.to_version, a.duration_ms = "deployed", None, 2, 1200
    watcher.update(run, a)
    watcher.wave(run, "rest")
    b.status, b.gate, b.exit_code = "failed", "migrate", 6
    b.error = "0001_items failed: password=hunter2-fleet in the message"
    watcher.update(run, b)
    c.status, run.halted = "not-run", "1 database(s) failed (max_failures 1)"
    watcher.finish(run)


def test_a_fleet_run_off_a_terminal_is_plain_lines():
    from shipshape.console import ConsoleFleetWatcher

    stream = io.StringIO()
    run = _fleet_run()
    _drive(ConsoleFleetWatcher(stream), run)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("· fleet t (dev): run t/dev/abc, attempt 1; 3 database(s)")
    assert lines[1] == "· wave canary: 1 database(s)"
    assert lines[2].startswith("✓ a  deployed  0000 -> 0002  1.2 s")
    assert lines[4].startswith("✗ b  failed at migrate (exit 6)")
    assert lines[5] == "! stopped: 1 database(s) failed (max_failures 1)"
    assert "hunter2-fleet" not in stream.getvalue() and "\x1b[" not in stream.getvalue()


def test_a_fleet_run_on_a_terminal_draws_a_live_table_of_the_databases_under_way():
    from rich.console import Console

    from shipshape.console import ConsoleFleetWatcher

    stream = io.StringIO()
    watcher = ConsoleFleetWatcher(stream)
    watcher.console = Console(file=stream, force_terminal=True, width=120, height=30)
    watcher.terminal = True
    run = _fleet_run()
    watcher.start(run)
    a = run.outcomes["a"]
    a.status, a.gate, a.started = "running", "migrate", 0.0
    watcher.live.refresh()
    drawn = stream.getvalue()
    assert "fleet t (dev)" in drawn and "1 running" in drawn and "migrate" in drawn
    a.status = "deployed"
    watcher.update(run, a)
    watcher.finish(run)
    assert watcher.live is None
    assert "✓ a  deployed" in stream.getvalue()


def test_progress_off_a_terminal_and_tables_import_no_rich():
    import subprocess
    import sys

    code = ("import io, sys\n"
            "from shipshape.console import ConsoleProgress, print_table\n"
            "p = ConsoleProgress(io.StringIO())\n"
            "with p.step('migrate') as s:\n    s.note('1 ms')\n"
            "p.info('note')\n"
            "print_table('t', ['a', 'b'], [['1', None]], io.StringIO())\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))\n")
    env = {"PATH": "/usr/bin:/bin"}  # no FORCE_COLOR or TTY_COMPATIBLE from the caller
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_table_is_aligned_plain_text_and_redacted():
    from shipshape.console import print_table
    from shipshape.secrets import register_secret

    register_secret("s3cret-in-a-cell")
    stream = io.StringIO()
    print_table("title", ["version", "detail"],
                [["0001", "ok"], ["0002", "dsn postgresql://u:s3cret-in-a-cell@h/db"], ["3", None]],
                stream)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "title"
    assert lines[1] == "version  detail"
    assert lines[2] == "-------  " + "-" * max(len(line) - 9 for line in lines[3:])
    assert lines[3] == "0001     ok" and lines[5] == "3"
    assert "s3cret-in-a-cell" not in stream.getvalue()
