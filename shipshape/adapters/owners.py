"""Who owns a scratch object: a marker of the owning process (pid, start time, host) that
goes into the object's name, and whether that owner still runs.

Why the start time: a pid alone is reused. A scratch database or server whose marker
names pid 4242 started at T belongs to a live owner only if pid 4242 runs now AND
started at T; otherwise its owner was killed (SIGKILL, OOM, a lost machine) and the
object is a leftover that the next command may remove. Why the host: a scratch database
lives on a server that processes on several machines share, and a pid says nothing about
another machine's processes, so only this host's leftovers are ever judged.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

# psutil is imported where a process is looked at: when a scratch object exists (a
# build, or a leftover found). A run that finds none, e.g. a warm verify, never needs it.
if TYPE_CHECKING:
    import psutil

# <pid>_<start time in centiseconds since the epoch>_<host hash>
_MARKER = re.compile(r"(?P<pid>\d{1,10})_(?P<start>\d{1,14})_(?P<host>[0-9a-f]{8})")


@dataclass(frozen=True)
class Owner:
    pid: int
    start: int  # centiseconds since the epoch, as psutil's create_time gives it
    host: str

    @property
    def marker(self) -> str:
        return f"{self.pid}_{self.start}_{self.host}"

    @property
    def local(self) -> bool:
        """Whether the owner ran on this machine (only then can its liveness be told)."""
        return self.host == host_hash()

    def alive(self) -> bool:
        """Whether the owning process still runs: same pid, same start time, not a
        zombie. Owners on other hosts count as alive: nothing here can tell."""
        if not self.local:
            return True
        import psutil

        try:
            process = psutil.Process(self.pid)
            return (_start_of(process) == self.start
                    and process.status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True  # it exists; whose it is cannot be read, so leave it be

    def describe(self) -> str:
        return f"pid {self.pid}" + ("" if self.local else f" on another host ({self.host})")


def host_hash() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def me() -> Owner:
    """The current process as an owner."""
    import psutil

    return Owner(os.getpid(), _start_of(psutil.Process()), host_hash())


def parse(text: str) -> Owner | None:
    """The owner whose marker starts `text` (a scratch object's name after its prefix), or
    None when it carries none (an object of an older shipshape: never judged)."""
    found = _MARKER.match(text)
    if not found:
        return None
    return Owner(int(found["pid"]), int(found["start"]), found["host"])


def _start_of(process: psutil.Process) -> int:
    return round(process.create_time() * 100)


@contextmanager
def terminate_as_exception():
    """While a scratch object exists, SIGTERM raises SystemExit(143) instead of ending the
    process on the spot, so the `finally` that removes the object runs (SIGINT already
    raises KeyboardInterrupt). Only in the main thread, and only where SIGTERM has its
    default action: a handler that the embedding program installed is left alone."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def terminated(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
