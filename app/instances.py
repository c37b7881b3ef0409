"""This replica's heartbeat in shipshape.app_instances: which release runs, and that it is
alive.

A deploy refuses a contract migration while a replica of an older release is alive
(shipshape reads this table; migration 0012_app_instances creates it). So the app
registers at start, refreshes last_seen every APP_HEARTBEAT_INTERVAL seconds, and
deletes its row when it stops; a replica killed without stopping ages out after the
deploy's heartbeat TTL. The heartbeat never fails a request: without the table (a
database before 0012) or a connection, it logs once and tries again at the next beat.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid

import psycopg

from app.logs import log

logger = logging.getLogger("app.instances")

BEAT_SQL = """
INSERT INTO shipshape.app_instances (instance, release, host, started_at, last_seen)
VALUES (%s, %s, %s, now(), now())
ON CONFLICT (instance) DO UPDATE SET release = EXCLUDED.release, last_seen = now()
"""
LEAVE_SQL = "DELETE FROM shipshape.app_instances WHERE instance = %s"


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Heartbeat:
    def __init__(self, pool, *, release: int, instance: str, interval: float):
        self.pool, self.release, self.instance, self.interval = pool, release, instance, interval
        self.host = socket.gethostname()
        self._task: asyncio.Task | None = None
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="heartbeat")

    async def beat(self) -> bool:
        try:
            async with self.pool.connection(timeout=self.interval) as conn:
                await conn.execute(BEAT_SQL, [self.instance, self.release, self.host])
        except (psycopg.Error, OSError, TimeoutError) as exc:
            if not self._failing:  # once per outage, not every beat
                log(logger, logging.WARNING, "heartbeat not recorded; retrying",
                    instance=self.instance, reason=type(exc).__name__)
            self._failing = True
            return False
        self._failing = False
        return True

    async def _run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Stop beating and deregister: a stopped replica holds no contract migration back."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        try:
            async with self.pool.connection(timeout=3) as conn:
                await conn.execute(LEAVE_SQL, [self.instance])
        except (psycopg.Error, OSError, TimeoutError):
            pass  # it ages out after the deploy's heartbeat TTL
