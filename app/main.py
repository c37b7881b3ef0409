"""The application factory: `uvicorn app.main:create_app --factory`, or `python -m app`."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__, api, errors, health, instances, logs, providers
from app.config import Settings
from app.logs import log, request_ctx
from app.worker import Worker

logger = logging.getLogger("app")
access = logging.getLogger("app.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
MAX_BODY = 4 * 1024 * 1024  # an avatar upload carries at most a 2 MB data: URL


async def _send_json(send, status: int, body: dict, headers: tuple = ()) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class BodyTooLarge(StarletteHTTPException):
    """Raised by the middleware's receive() once the body passes MAX_BODY. An
    HTTPException, so that FastAPI's body reader passes it on as it is (it turns any other
    exception into a 400) and errors.http_error_handler answers it."""

    def __init__(self, message: str):
        # Unread bytes may still be on their way: closing the connection is the only way
        # not to read them (keep-alive would have uvicorn read and discard them all).
        super().__init__(413, message, headers={"Connection": "close"})


async def _refuse_too_large(send, request_id: str, message: str) -> None:
    body = {
        "success": False,
        "requestId": request_id,
        "error": {"code": "PAYLOAD_TOO_LARGE", "message": message},
    }
    await _send_json(send, 413, body, headers=((b"connection", b"close"),))


class RequestContext:
    """Pure ASGI middleware: a request id (X-Request-ID in, or a new one; echoed back),
    one access log line per request, 413 for a body larger than MAX_BODY (announced, or
    counted as it arrives: a chunked body has no Content-Length), and a JSON 500 for
    anything that escaped."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id, length = None, 0
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                candidate = value.decode("latin-1")
                request_id = candidate if _REQUEST_ID.match(candidate) else None
            elif key == b"content-length" and value.isdigit():
                length = int(value)
        request_id = request_id or uuid.uuid4().hex
        ctx = {"requestId": request_id}
        token = request_ctx.set(ctx)
        started = time.perf_counter()
        state = {"status": 500, "started": False, "received": 0}

        async def receive_limited():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > MAX_BODY:
                    raise BodyTooLarge(f"The body is larger than the limit of {MAX_BODY} bytes.")
            return message

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            if length > MAX_BODY:
                await _refuse_too_large(
                    send_with_id,
                    request_id,
                    f"The body has {length} bytes; the limit is {MAX_BODY}.",
                )
            else:
                await self.app(scope, receive_limited, send_with_id)
        except BodyTooLarge as exc:  # read outside a route (errors.py answers inside one)
            if not state["started"]:
                await _refuse_too_large(send_with_id, request_id, exc.detail)
        except Exception:
            logger.exception("unhandled error")
            if not state["started"]:
                await _send_json(
                    send_with_id,
                    500,
                    {
                        "success": False,
                        "requestId": request_id,
                        "error": {
                            "code": "INTERNAL_ERROR",
                            "message": "Unexpected error; the log has the details under this "
                            "requestId.",
                        },
                    },
                )
        finally:
            path = scope.get("path", "")
            quiet = path.startswith("/health") and state["status"] == 200
            log(
                access,
                logging.DEBUG if quiet else logging.INFO,
                "request",
                method=scope.get("method"),
                path=path,
                status=state["status"],
                durationMs=round((time.perf_counter() - started) * 1000, 1),
            )
            request_ctx.reset(token)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    logs.register_secret(settings.huggingface_api_key)
    try:
        logs.register_secret(conninfo_to_dict(settings.database_url).get("password"))
    except (psycopg.Error, ValueError):
        logger.warning("DATABASE_URL cannot be parsed; connecting will fail with the reason")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async def configure(conn):
            await conn.execute("SET statement_timeout = '15s'")
            await conn.execute("SET lock_timeout = '5s'")
            await conn.execute("SET TIME ZONE 'UTC'")

        pool = AsyncConnectionPool(
            settings.database_url,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": 5,
                "application_name": "avatar-creator",
            },
            configure=configure,
            open=False,
            name="avatar-creator",
            timeout=settings.pool_timeout,
        )
        await pool.open(wait=False)
        provider = providers.build(settings)
        worker = Worker(
            pool,
            provider,
            concurrency=settings.worker_concurrency,
            poll_interval=settings.worker_poll_interval,
        )
        app.state.pool, app.state.provider, app.state.worker = pool, provider, worker
        if settings.worker_enabled:
            worker.start()
        heartbeat = instances.Heartbeat(
            pool,
            release=settings.release,
            instance=settings.instance_id or instances.default_instance_id(),
            interval=settings.heartbeat_interval,
        )
        heartbeat.start()
        log(
            logger,
            logging.INFO,
            "avatar-creator started",
            env=settings.app_env,
            version=__version__,
            schemaVersion=settings.release,
            instance=heartbeat.instance,
            provider=provider.name,
            database=logs.redact_dsn(settings.database_url),
            worker=settings.worker_enabled,
        )
        if settings.app_env == "prod" and provider.name == "placeholder":
            logger.warning("GENERATION_PROVIDER=placeholder in prod: avatars are drawn locally")
        try:
            yield
        finally:
            await heartbeat.stop()
            await worker.stop()
            await provider.aclose()
            await pool.close()
            log(logger, logging.INFO, "avatar-creator stopped")

    public_docs = settings.app_env != "prod"
    app = FastAPI(
        title="Avatar Creator API",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if public_docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if public_docs else None,
    )
    app.state.settings = settings
    errors.install(app)
    app.include_router(health.router)
    app.include_router(api.router)
    app.add_middleware(RequestContext)
    return app
