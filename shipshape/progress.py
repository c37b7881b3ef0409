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
    """What a step says about itself: a detail line, and whether it found problems.

    A step that ends without an exception succeeded (✓) unless it `found` something (!);
    one that raises failed (✗). Only success earns the check mark."""

    def __init__(self):
        self.detail = ""
        self.findings = False

    def note(self, detail: str) -> None:
        self.detail = detail

    def found(self, detail: str) -> None:
        """The step ran, and what it checked is not healthy."""
        self.detail = detail
        self.findings = True
