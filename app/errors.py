"""Known conditions become a status code and a body that says what happened; never a bare 500.

Body of every error: {"success": false, "error": {"code", "message", ...}, "requestId"}.

  401 UNAUTHORIZED        missing, unknown, revoked or expired bearer token
  402 INSUFFICIENT_CREDITS
  404 NOT_FOUND           unknown route; PROJECT_NOT_FOUND, AVATAR_NOT_FOUND, GENERATION_NOT_FOUND
  405 METHOD_NOT_ALLOWED
  413 PAYLOAD_TOO_LARGE   a body over app.main.MAX_BODY, announced or chunked
  422 VALIDATION_ERROR    with "fields": [{"field", "message", "type"}]
  503 NO_AI_MODELS        no enabled model for avatar-creator (incident 1)
  503 SCHEMA_MISMATCH     a table or column is missing (incidents 2, 3, 4), named in "objects"
  503 DATABASE_PERMISSION the app's role lacks a privilege (a grant is missing)
  503 DATABASE_UNAVAILABLE
  500 INTERNAL_ERROR      a bug: the log line with the same requestId has the traceback
"""

from __future__ import annotations

import logging
import re
from typing import Literal

import psycopg
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.logs import current_request_id, log

logger = logging.getLogger("app.errors")


# --- the error bodies, as OpenAPI documents them ----------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an undocumented field fails the tests


class FieldError(Strict):
    field: str  # dotted path in the body, or the parameter's name; "body" for the whole
    message: str
    type: str


class ErrorDetail(Strict):
    code: str
    message: str


class ErrorBody(Strict):
    success: Literal[False]
    error: ErrorDetail
    requestId: str | None


def _body(name: str, detail: type[ErrorDetail]) -> type[ErrorBody]:
    return create_model(name, __base__=ErrorBody, error=(detail, ...))


class UnauthorizedDetail(ErrorDetail):
    code: Literal["UNAUTHORIZED"]


class InsufficientCreditsDetail(ErrorDetail):
    code: Literal["INSUFFICIENT_CREDITS"]
    required: int
    creditBalance: int


class NotFoundDetail(ErrorDetail):
    code: Literal[
        "NOT_FOUND",
        "PROJECT_NOT_FOUND",
        "AVATAR_NOT_FOUND",
        "GENERATION_NOT_FOUND",
        "IMAGE_NOT_FOUND",
    ]


class TooLargeDetail(ErrorDetail):
    code: Literal["PAYLOAD_TOO_LARGE"]


class ValidationDetail(ErrorDetail):
    code: Literal["VALIDATION_ERROR"]
    fields: list[FieldError]


class UnavailableDetail(ErrorDetail):
    code: Literal["NO_AI_MODELS", "SCHEMA_MISMATCH", "DATABASE_PERMISSION", "DATABASE_UNAVAILABLE"]
    fix: str | None = None  # the command that repairs it
    objects: list[str] | None = None  # SCHEMA_MISMATCH: the missing tables and columns
    retryAfterSeconds: int | None = None  # DATABASE_UNAVAILABLE, also as Retry-After


def _response(model: type[ErrorBody], description: str, **headers: str) -> dict:
    entry = {"model": model, "description": description}
    if headers:
        entry["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return entry


ERRORS = {
    401: _response(
        _body("Unauthorized", UnauthorizedDetail),
        "Missing, malformed, unknown, revoked or expired bearer token.",
        **{"WWW-Authenticate": "Bearer"},
    ),
    402: _response(
        _body("InsufficientCredits", InsufficientCreditsDetail),
        "The balance does not cover the model's credit cost; nothing was charged.",
    ),
    404: _response(_body("NotFound", NotFoundDetail), "No such resource of this user."),
    413: _response(
        _body("PayloadTooLarge", TooLargeDetail),
        (
            "The body is over the limit (announced, or counted while it arrives); the "
            "connection is closed without reading the rest."
        ),
    ),
    422: _response(
        _body("ValidationFailed", ValidationDetail),
        "Invalid path, query or body: one entry in `fields` per problem.",
    ),
    503: _response(
        _body("Unavailable", UnavailableDetail),
        (
            "The database did not answer, is behind the code (SCHEMA_MISMATCH names the "
            "missing objects), lacks a grant, or has no enabled models; `message` and "
            "`fix` say what to run."
        ),
        **{"Retry-After": "seconds to wait (DATABASE_UNAVAILABLE)"},
    ),
}


def responses(*statuses: int) -> dict:
    """The OpenAPI `responses` entries of these error statuses."""
    return {status: ERRORS[status] for status in statuses}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"{what.upper()}_NOT_FOUND", f"{what.capitalize()} {ident} not found")


def error_response(
    status: int, code: str, message: str, headers: dict | None = None, **extra
) -> JSONResponse:
    body = {
        "success": False,
        "error": {"code": code, "message": message, **extra},
        "requestId": current_request_id(),
    }
    return JSONResponse(body, status_code=status, headers=headers)


async def api_error_handler(request: Request, exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return error_response(exc.status, exc.code, exc.message, headers=headers, **exc.extra)


NOT_JSON = "the body is not valid JSON"


def _invalid(fields: list[dict]) -> JSONResponse:
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
    return error_response(422, "VALIDATION_ERROR", f"Invalid request: {summary}", fields=fields)


async def validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
        message = error.get("msg", "invalid")
        if error.get("type") == "json_invalid":
            loc, message = [], NOT_JSON
        fields.append(
            {
                "field": ".".join(loc) or "body",
                "message": message,
                "type": error.get("type", "invalid"),
            }
        )
    return _invalid(fields)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path. Starlette's 405 names only the first
    route that matched the path, and a path served by several routes (GET and POST
    /projects) needs all of them in Allow. Asking each method of the routes, rather than
    reading their `methods`, also works where routers are included as routes."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


async def http_error_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:
        # FastAPI's answer to a body json.loads cannot take (not UTF-8, nested too deep):
        # the only 400 here, and as much a bad body as invalid JSON, which is a 422.
        return _invalid([{"field": "body", "message": NOT_JSON, "type": "json_invalid"}])
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
    message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
    headers = getattr(exc, "headers", None)
    if exc.status_code == 404:
        message = f"No route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        allowed = _allowed_methods(request)
        headers = {**(headers or {}), "Allow": allowed}
        message = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    return error_response(
        exc.status_code,
        codes.get(exc.status_code, "HTTP_ERROR"),
        message,
        headers=headers,
    )


_UNDEFINED = re.compile(r'(?:relation|column) "?([^"\s]+)"?(?: of relation "([^"]+)")?')


async def database_error_handler(request: Request, exc: psycopg.Error) -> JSONResponse:
    settings = request.app.state.settings
    # The app cannot tell a pending migration from a column dropped by hand: doctor can.
    fix = f"run `{settings.doctor_command}`"
    if isinstance(exc, (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn)):
        objects = await _missing_objects(request)
        if not objects:  # not in REQUIRED (a bug), or created meanwhile: name what PG said
            match = _UNDEFINED.search(exc.diag.message_primary or "")
            objects = [".".join(filter(None, reversed(match.groups())))] if match else []
        described = ", ".join(objects) or "an object the app needs"
        log(
            logger,
            logging.ERROR,
            "schema mismatch",
            missing=objects,
            pgerror=exc.diag.message_primary,
        )
        return error_response(
            503,
            "SCHEMA_MISMATCH",
            f"The database schema does not match the app: missing {described}. "
            f"Find out why and what fixes it: {fix}.",
            objects=objects,
            fix=fix,
        )
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        log(logger, logging.ERROR, "permission denied", pgerror=exc.diag.message_primary)
        return error_response(
            503,
            "DATABASE_PERMISSION",
            f"The app's database role lacks a privilege: "
            f"{exc.diag.message_primary}. The grants come with the "
            f"migrations: {fix}.",
            fix=fix,
        )
    if isinstance(exc, psycopg.OperationalError):
        log(logger, logging.ERROR, "database unavailable", error=str(exc).strip()[:300])
        return error_response(
            503,
            "DATABASE_UNAVAILABLE",
            "The database did not answer in time; retry shortly.",
            retryAfterSeconds=5,
            headers={"Retry-After": "5"},
        )
    logger.error("database error", exc_info=exc)
    return error_response(
        500,
        "INTERNAL_ERROR",
        "Unexpected database error; the log has the details under this requestId.",
    )


async def _missing_objects(request: Request) -> list[str]:
    from app import schema

    try:
        async with request.app.state.pool.connection(timeout=3) as conn:
            return await schema.missing_objects(conn)
    except Exception:
        logger.warning("could not inspect the schema", exc_info=True)
        return []


def install(app) -> None:
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(psycopg.Error, database_error_handler)
