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
