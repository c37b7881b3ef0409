"""The generation worker: pending -> processing -> completed (with its avatar) | failed.

Runs inside the app process as an asyncio task. Claims work with FOR UPDATE SKIP LOCKED,
so several app instances share the queue without taking the same generation twice. A
failed generation gives its credits back in the same transaction that marks it failed;
a generation left in `processing` by a crashed instance fails (and refunds) after
STALE_AFTER.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

import psycopg

from app import store
from app.logs import log, redact
from app.providers import ProviderError

logger = logging.getLogger("app.worker")

STALE_AFTER = "15 minutes"

CLAIM_SQL = """
UPDATE avatar_generations g
SET status = 'processing',
    options = g.options || jsonb_build_object('startedAt', now())
WHERE g.id IN (SELECT id FROM avatar_generations WHERE status = 'pending'
               ORDER BY "createdAt", id LIMIT %s FOR UPDATE SKIP LOCKED)
RETURNING g.id, g."userId", g."projectId", g.prompt, g.options
"""

COMPLETE_SQL = """
UPDATE avatar_generations SET status = 'completed', "avatarId" = %s, "completedAt" = now()
WHERE id = %s AND status = 'processing' RETURNING id
"""

FAIL_SQL = """
UPDATE avatar_generations SET status = 'failed', "errorMessage" = %s, "completedAt" = now()
WHERE id = %s AND status IN ('pending', 'processing') RETURNING "userId", options
"""

STALE_SQL = f"""
SELECT id FROM avatar_generations
WHERE status = 'processing'
  AND coalesce((options->>'startedAt')::timestamptz, "createdAt") < now() - interval '{STALE_AFTER}'
LIMIT 100
"""


def seed_for(generation_id: str, requested: int | None) -> int:
    if requested is not None:
        return requested
    return int.from_bytes(hashlib.sha256(generation_id.encode()).digest()[:4], "big") & 0x7FFFFFFF


class Worker:
    def __init__(self, pool, provider, *, concurrency: int = 2, poll_interval: float = 1.0):
        self.pool = pool
        self.provider = provider
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = False
        self._running: set[asyncio.Task] = set()
        self._task: asyncio.Task | None = None
        self._next_stale_check = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="generation-worker")

    def notify(self) -> None:
        """Wake up now: a generation was just queued."""
        self._wake.set()

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=timeout)
        if self._running:
            await asyncio.wait(self._running, timeout=timeout)

    async def _loop(self) -> None:
        backoff = self.poll_interval
        while not self._stopping:
            # Cleared before claiming: a notify() that lands during the claim is kept.
            self._wake.clear()
            try:
                await self._fail_stale()
                free = self.concurrency - len(self._running)
                for job in await self._claim(free) if free > 0 else []:
                    task = asyncio.create_task(self._process(job))
                    self._running.add(task)
                    task.add_done_callback(self._done)
                backoff = self.poll_interval
            except (psycopg.Error, OSError) as exc:
                # The database is down or behind the code: the readiness check says which.
                log(
                    logger,
                    logging.WARNING,
                    "worker cannot reach its queue",
                    error=type(exc).__name__,
                    detail=str(exc).strip()[:200],
                )
                backoff = min(backoff * 2, 30.0)
            except Exception:
                logger.exception("worker loop error")
                backoff = min(backoff * 2, 30.0)
            # Until a generation is queued here, a slot frees up, or the poll interval
            # (other instances' generations) passes.
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)
            except TimeoutError:
                pass

    def _done(self, task: asyncio.Task) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("generation task crashed", exc_info=task.exception())
        self._wake.set()  # a slot is free

    async def _claim(self, limit: int) -> list[dict]:
        async with self.pool.connection(timeout=5) as conn:
            return await store.all_rows(conn, CLAIM_SQL, [limit])

    async def _process(self, job: dict) -> None:
        generation_id = job["id"]
        options = job["options"] or {}
        seed = seed_for(generation_id, options.get("seed"))
        model = {
            "modelKey": options.get("modelKey"),
            "capabilities": options.get("capabilities") or {},
        }
        log(
            logger,
            logging.INFO,
            "generation processing",
            generationId=generation_id,
            modelKey=model["modelKey"],
            provider=self.provider.name,
            queuedBy=options.get("requestId"),
        )
        try:
            image = await self.provider.generate(job["prompt"], seed, model)
        except ProviderError as exc:
            await self._fail(generation_id, str(exc))
            return
        except Exception as exc:
            logger.exception("provider crashed", extra={"fields": {"generationId": generation_id}})
            await self._fail(
                generation_id,
                f"internal error in the {self.provider.name} provider: {type(exc).__name__}",
            )
            return
        values = {
            k: v
            for k, v in (options.get("attributes") or {}).items()
            if k in store.AVATAR_ATTRIBUTES
        }
        values.update(
            {
                "name": options.get("name") or "AI Avatar",
                "baseImageUrl": image.url,
                "thumbnailUrl": image.thumbnail_url,
                "sourceType": "generated",
                "generationPrompt": job["prompt"],
                "seedUsed": seed,
            }
        )
        try:
            async with self.pool.connection(timeout=10) as conn, conn.transaction():
                avatar = await store.insert_avatar(
                    conn, job["userId"], job["projectId"], values, action="generated"
                )
                if avatar is None:
                    raise _ProjectGone()
                done = await store.one(conn, COMPLETE_SQL, [avatar["id"], generation_id])
                if done is None:
                    raise _NoLongerProcessing()
        except _NoLongerProcessing:
            # Failed meanwhile as stale (which refunded it): keep that outcome, no avatar.
            log(
                logger,
                logging.WARNING,
                "generation no longer processing; result dropped",
                generationId=generation_id,
            )
            return
        except _ProjectGone:
            # The project (and with it this generation) was deleted meanwhile: the user
            # still gets the credits back.
            async with self.pool.connection(timeout=10) as conn:
                await store.refund(conn, job["userId"], int(options.get("creditUsed") or 0))
            log(
                logger,
                logging.INFO,
                "generation dropped: project deleted; credits refunded",
                generationId=generation_id,
            )
            return
        log(
            logger,
            logging.INFO,
            "generation completed",
            generationId=generation_id,
            avatarId=avatar["id"],
        )

    async def _fail(self, generation_id: str, message: str) -> None:
        message = redact(message)[:500]
        async with self.pool.connection(timeout=10) as conn, conn.transaction():
            row = await store.one(conn, FAIL_SQL, [message, generation_id])
            if row is not None:  # only the transition refunds: never twice
                await store.refund(conn, row["userId"], int(row["options"].get("creditUsed") or 0))
        log(
            logger,
            logging.WARNING,
            "generation failed; credits refunded",
            generationId=generation_id,
            error=message,
        )

    async def _fail_stale(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_stale_check:
            return
        self._next_stale_check = loop.time() + 60
        async with self.pool.connection(timeout=5) as conn:
            stale = await store.all_rows(conn, STALE_SQL)
        for row in stale:
            await self._fail(row["id"], f"timed out: processing for more than {STALE_AFTER}")


class _ProjectGone(Exception):
    pass


class _NoLongerProcessing(Exception):
    pass
