"""Progress: what long work reports as it goes. Silent here; the console draws it.

The engine and the operations take a Progress; only the tasks choose a visible one
(shipshape.console.ConsoleProgress), so library code never prints.
"""

from __future__ import annotations

from contextlib import contextmanager


class Progress:
    """Silent progress: what library functions get when nobody is watching."""

    @contextmanager
    def step(self, label: str):
        yield StepHandle()

    def info(self, message: str) -> None:
        pass


class StepHandle:
    def __init__(self):
        self.detail = ""

    def note(self, detail: str) -> None:
        self.detail = detail
