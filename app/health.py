"""/health (liveness), /health/ready (readiness with named checks), /health/models."""

from __future__ import annotations

import logging

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app import __version__, responses, schema, store
from app.errors import responses as errors

# The middleware answers 413 before any route runs (app.main.MAX_BODY).
router = APIRouter(responses=errors(413))
logger = logging.getLogger("app.health")


def _db_wait(app) -> float:
    """How long a health check waits for a connection: short, health checks time out."""
    return min(3.0, app.state.settings.pool_timeout)


@router.get("/health", response_model=responses.Liveness)
async def health():
    """Liveness: the process serves HTTP. Says nothing about the database."""
    return {"status": "ok"}


async def readiness(app) -> tuple[bool, dict]:
    """Every check, each {ok, message}; message says what is wrong and the command to run."""
    settings = app.state.settings
    env = settings.app_env
    deploy = settings.deploy_command
    checks: dict[str, dict] = {}
    try:
        async with app.state.pool.connection(timeout=_db_wait(app)) as conn:
            await conn.execute("SELECT 1")
            checks["database"] = {"ok": True}
            release = settings.release
            try:
                applied = await schema.applied_migrations(conn)
                version = max(applied) if applied else None
                problem = schema.version_problem(applied, deploy, release,
                                                 doctor_command=settings.doctor_command)
            except psycopg.errors.InsufficientPrivilege:
                version, problem = (
                    None,
                    (
                        "the app's role cannot read shipshape.history (granted by migration 0011), "
                        f"app needs {release}: run `{deploy}`"
                    ),
                )
            except psycopg.errors.UndefinedColumn:  # a history written before phases
                version, problem = (
                    None,
                    f"shipshape.history has no phase column, app needs {release}: run `{deploy}`",
                )
            checks["schemaVersion"] = {
                "ok": problem is None,
                "database": version,
                "app": release,
            }
            if problem:
                checks["schemaVersion"]["message"] = problem
            missing = await schema.missing_objects(conn)
            checks["schemaObjects"] = {"ok": not missing}
            if missing:
                checks["schemaObjects"].update(
                    missing=missing,
                    message=(
                        f"missing {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}: "
                        f"run `{settings.doctor_command}`"
                    ),
                )
            if "table ai_models" in missing:
                checks["models"] = {
                    "ok": False,
                    "message": f"table ai_models is missing: run `{settings.doctor_command}`",
                }
            else:
                count = await store.count_enabled_models(conn)
                checks["models"] = {
                    "ok": count > 0,
                    "enabled": count,
                    "expected": settings.expected_models,
                }
                if count == 0:
                    checks["models"]["message"] = (
                        f"no enabled AI models for avatar-creator (0 of "
                        f"{settings.expected_models} expected): run `invoke db.seed --env {env}`"
                    )
    except (psycopg.OperationalError, OSError) as exc:
        logger.warning("readiness: database unreachable: %s", str(exc).strip()[:200])
        checks["database"] = {
            "ok": False,
            "message": (
                f"database did not answer within {_db_wait(app):g} s ({type(exc).__name__}): "
                "check DATABASE_URL "
                f"and that PostgreSQL runs (`invoke db.status --env {env}`)"
            ),
        }
    failed = [name for name, check in checks.items() if not check["ok"]]
    body = {
        "status": "ready" if not failed else "unavailable",
        "version": __version__,
        "env": env,
        "checks": checks,
    }
    if failed:
        body["failed"] = failed
        body["message"] = "; ".join(checks[name]["message"] for name in failed)
    return not failed, body


@router.get(
    "/health/ready",
    response_model=responses.Readiness,
    responses={503: {"model": responses.Readiness, "description": "A check failed."}},
)
async def ready(request: Request):
    ok, body = await readiness(request.app)
    return JSONResponse(body, status_code=200 if ok else 503)


async def models_health(request: Request):
    """Incident 1's wish: the enabled model count against the expected count."""
    settings = request.app.state.settings
    try:
        async with request.app.state.pool.connection(timeout=_db_wait(request.app)) as conn:
            models = await store.enabled_models(conn)
    except psycopg.errors.UndefinedTable:
        return JSONResponse(
            {
                "status": "unhealthy",
                "modelCount": 0,
                "expected": settings.expected_models,
                "message": f"table ai_models is missing: run `{settings.doctor_command}`",
            },
            status_code=503,
        )
    except psycopg.OperationalError:
        return JSONResponse(
            {
                "status": "unhealthy",
                "modelCount": None,
                "expected": settings.expected_models,
                "message": "database did not answer",
            },
            status_code=503,
        )
    count = len(models)
    healthy = count >= settings.expected_models
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "modelCount": count,
        "expected": settings.expected_models,
        "models": [m["modelKey"] for m in models],
    }
    if not healthy:
        body["message"] = (
            f"{count} of {settings.expected_models} AI models enabled for "
            f"avatar-creator: run `invoke db.seed --env {settings.app_env}`"
        )
    return JSONResponse(body, status_code=200 if healthy else 503)


for _path in ("/health/models", "/api/apps/avatar-creator/health/models"):
    router.add_api_route(
        _path,
        models_health,
        methods=["GET"],
        response_model=responses.ModelsHealth,
        responses={
            503: {"model": responses.ModelsHealth, "description": "Fewer models than expected."}
        },
    )
