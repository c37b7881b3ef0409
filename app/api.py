"""/api/apps/avatar-creator: projects, avatars, models, generations, placeholder images."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from app import png, responses, store
from app.errors import ApiError, not_found
from app.errors import responses as errors
from app.logs import current_request_id, log, set_user
from app.schemas import (
    BIGINT_MAX,
    AvatarUpload,
    GenerateRequest,
    Ident,
    ProjectCreate,
    ProjectUpdate,
)
from app.tokens import looks_like_token, token_hash

PREFIX = "/api/apps/avatar-creator"
# The middleware answers 413 before any route runs (app.main.MAX_BODY).
router = APIRouter(prefix=PREFIX, responses=errors(413))
logger = logging.getLogger("app.api")


# --- auth -------------------------------------------------------------------------------


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message)


class Session:
    """The authenticated user and the pooled connection that serves the whole request."""

    __slots__ = ("conn", "user")

    def __init__(self, conn, user: dict):
        self.conn, self.user = conn, user

    @property
    def user_id(self) -> str:
        return self.user["id"]


async def session(request: Request) -> AsyncIterator[Session]:
    """`Authorization: Bearer <token>` -> its user, or 401; never logs the token. One pool
    checkout serves both the token lookup and the request's own queries."""
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("Missing bearer token: send `Authorization: Bearer <token>`.")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("The Authorization header must be `Bearer <token>`.")
    if not looks_like_token(token):
        raise _unauthorized("Invalid, expired or revoked token.")
    async with request.app.state.pool.connection() as conn:
        user = await store.user_for_token(conn, token_hash(token))
        if user is None:
            raise _unauthorized("Invalid, expired or revoked token.")
        last = user["lastUsedAt"]
        if last is None or last < datetime.now(UTC) - timedelta(minutes=5):
            await store.touch_token(conn, user["tokenId"])
        set_user(user["id"])
        yield Session(conn, user)


Auth = Depends(session)


def _json(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="application/json")


# --- account ----------------------------------------------------------------------------

ACCOUNT_FIELDS = tuple(responses.Account.model_fields)


@router.get("/me", response_model=responses.Me, responses=errors(401, 503))
async def me(s: Session = Auth):
    """The authenticated user's account and credit balance, as of this request (the token
    lookup reads them): a client checks the balance before it generates."""
    account = {key: s.user[key] for key in ACCOUNT_FIELDS}
    return JSONResponse({"success": True, "user": store.jsonable(account)})


# --- projects ---------------------------------------------------------------------------


@router.get("/projects", response_model=list[responses.Project], responses=errors(401, 422, 503))
async def list_projects(
    s: Session = Auth,
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0, le=BIGINT_MAX),  # OFFSET takes a bigint
):
    """The user's projects, newest first, each with its avatars (a JSON array)."""
    return _json(await store.list_projects_json(s.conn, s.user_id, limit, offset))


@router.post(
    "/projects",
    status_code=201,
    response_model=responses.ProjectChanged,
    responses=errors(401, 422, 503),
)
async def create_project(body: ProjectCreate, s: Session = Auth):
    project = await store.create_project(s.conn, s.user_id, body.name, body.description)
    return JSONResponse(
        {"success": True, "project": project, "message": "Project created successfully"},
        status_code=201,
    )


@router.get(
    "/projects/{project_id}",
    response_model=responses.ProjectRead,
    responses=errors(401, 404, 422, 503),
)
async def get_project(project_id: Ident, s: Session = Auth):
    project = await store.get_project_json(s.conn, s.user_id, project_id)
    if project is None:
        raise not_found("project", project_id)
    return _json('{"success":true,"project":' + project + "}")


@router.put(
    "/projects/{project_id}",
    response_model=responses.ProjectChanged,
    responses=errors(401, 404, 422, 503),
)
@router.patch(
    "/projects/{project_id}",
    response_model=responses.ProjectChanged,
    responses=errors(401, 404, 422, 503),
)
async def update_project(project_id: Ident, body: ProjectUpdate, s: Session = Auth):
    changes = body.model_dump(include=body.model_fields_set)
    async with s.conn.transaction():
        project = await store.update_project(s.conn, s.user_id, project_id, changes)
    if project is None:
        raise not_found("project", project_id)
    return JSONResponse(
        {"success": True, "project": project, "message": "Project updated successfully"}
    )


@router.delete(
    "/projects/{project_id}",
    response_model=responses.ProjectDeleted,
    responses=errors(401, 404, 422, 503),
)
async def delete_project(project_id: Ident, s: Session = Auth):
    """Deletes the project, its avatars and its generations (ON DELETE CASCADE)."""
    deleted_avatars = await store.delete_project(s.conn, s.user_id, project_id)
    if deleted_avatars is None:
        raise not_found("project", project_id)
    log(logger, logging.INFO, "project deleted", projectId=project_id, avatars=deleted_avatars)
    return JSONResponse(
        {
            "success": True,
            "message": "Project deleted successfully",
            "deletedAvatars": deleted_avatars,
        }
    )


# --- avatars ----------------------------------------------------------------------------


@router.post(
    "/projects/{project_id}/avatars",
    status_code=201,
    response_model=responses.AvatarCreated,
    responses=errors(401, 404, 422, 503),
)
async def upload_avatar(project_id: Ident, body: AvatarUpload, s: Session = Auth):
    """Record an uploaded avatar: its metadata and the URL of its image."""
    values = {
        **body.attributes(),
        "name": body.name,
        "baseImageUrl": body.baseImageUrl,
        "thumbnailUrl": body.thumbnailUrl,
        "sourceType": "uploaded",
    }
    async with s.conn.transaction():
        avatar = await store.insert_avatar(s.conn, s.user_id, project_id, values, action="uploaded")
    if avatar is None:
        raise not_found("project", project_id)
    return JSONResponse(
        {
            "success": True,
            "avatar": store.jsonable(avatar),
            "message": "Avatar uploaded successfully",
        },
        status_code=201,
    )


@router.get(
    "/avatars/{avatar_id}",
    response_model=responses.AvatarRead,
    responses=errors(401, 404, 422, 503),
)
async def get_avatar(avatar_id: Ident, s: Session = Auth):
    avatar = await store.get_avatar(s.conn, s.user_id, avatar_id)
    if avatar is None:
        raise not_found("avatar", avatar_id)
    return JSONResponse({"success": True, "avatar": store.jsonable(avatar)})


@router.delete(
    "/avatars/{avatar_id}",
    response_model=responses.Deleted,
    responses=errors(401, 404, 422, 503),
)
async def delete_avatar(avatar_id: Ident, s: Session = Auth):
    deleted = await store.delete_avatar(s.conn, s.user_id, avatar_id)
    if not deleted:
        raise not_found("avatar", avatar_id)
    return JSONResponse({"success": True, "message": "Avatar deleted successfully"})


# --- models and generation --------------------------------------------------------------


def _no_models(request: Request) -> ApiError:
    settings = request.app.state.settings
    return ApiError(
        503,
        "NO_AI_MODELS",
        "No AI models are enabled for avatar-creator, so avatars cannot be generated. "
        f"The models are seed data: run `invoke db.seed --env {settings.app_env}` "
        f"(or `{settings.deploy_command}`).",
        fix=f"invoke db.seed --env {settings.app_env}",
    )


@router.get("/models", response_model=responses.ModelList, responses=errors(401, 503))
async def list_models(request: Request, s: Session = Auth):
    """The enabled models, in the order generation picks them."""
    models = await store.enabled_models(s.conn)
    if not models:
        raise _no_models(request)
    return JSONResponse(
        {"success": True, "models": [store.jsonable(m) for m in models], "count": len(models)}
    )


@router.post(
    "/projects/{project_id}/avatars/generate",
    response_model=responses.GenerationStarted,
    responses=errors(401, 402, 404, 422, 503),
)
async def generate(request: Request, project_id: Ident, body: GenerateRequest, s: Session = Auth):
    """Pick the model (lowest tier, then lowest credit cost), charge its credits and queue a
    pending generation, all in one transaction; the worker does the rest."""
    conn, user = s.conn, s.user
    async with conn.transaction():
        if not await store.lock_project(conn, user["id"], project_id):
            raise not_found("project", project_id)
        model = await store.pick_model(conn)
        if model is None:
            raise _no_models(request)
        charged = await store.charge(conn, user["id"], model["creditCost"])
        if charged is None:
            balance = await store.balance(conn, user["id"])
            raise ApiError(
                402,
                "INSUFFICIENT_CREDITS",
                f"Generating with {model['name']} costs {model['creditCost']} credits; "
                f"the balance is {balance}.",
                required=model["creditCost"],
                creditBalance=balance,
            )
        cost, balance = charged["charged"], charged["creditBalance"]
        options = {
            "name": body.name,
            "seed": body.seed,
            "modelKey": model["modelKey"],
            "modelName": model["name"],
            "provider": request.app.state.provider.name,
            "capabilities": model["capabilities"],
            "creditUsed": cost,
            "attributes": body.attributes(),
            "requestId": current_request_id(),
        }
        generation = await store.insert_generation(
            conn, user["id"], project_id, body.prompt, options
        )
    request.app.state.worker.notify()
    log(
        logger,
        logging.INFO,
        "generation queued",
        generationId=generation["id"],
        modelKey=model["modelKey"],
        creditUsed=cost,
        creditBalance=balance,
    )
    return JSONResponse(
        {
            "message": "Avatar generation started",
            "generation": {
                "id": generation["id"],
                "status": generation["status"],
                "projectId": project_id,
                "modelKey": model["modelKey"],
                "createdAt": generation["createdAt"].isoformat(),
            },
            "creditUsed": cost,
            "creditBalance": balance,
        }
    )


@router.get(
    "/generations/{generation_id}",
    response_model=responses.GenerationRead,
    responses=errors(401, 404, 422, 503),
)
async def get_generation(generation_id: Ident, s: Session = Auth):
    generation = await store.get_generation(s.conn, s.user_id, generation_id)
    if generation is None:
        raise not_found("generation", generation_id)
    avatar = None
    if generation["avatarId"]:
        avatar = await store.get_avatar(s.conn, s.user_id, generation["avatarId"])
    return JSONResponse({"success": True, "generation": store.generation_body(generation, avatar)})


# --- images -----------------------------------------------------------------------------

_IMAGE_NAME = re.compile(r"^(\d{1,10})-(\d{1,4})x(\d{1,4})\.png$")


@router.get(
    "/images/placeholder/{name}",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The PNG."},
        **errors(404, 422),
    },
)
async def placeholder_image(name: Ident):
    """The placeholder provider's images: a pure function of seed and size, so public."""
    match = _IMAGE_NAME.match(name)
    if not match:
        raise ApiError(404, "IMAGE_NOT_FOUND", f"No image {name}")
    seed, width, height = (int(g) for g in match.groups())
    if seed > 2**31 - 1 or width not in png.SIZES or height not in png.SIZES:
        raise ApiError(404, "IMAGE_NOT_FOUND", f"No image {name}")
    import asyncio

    data = await asyncio.to_thread(png.render, seed, width, height)
    return Response(
        data,
        media_type="image/png",
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
