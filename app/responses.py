"""Response bodies, as OpenAPI documents them.

The routes build their JSON themselves (PostgreSQL writes the project documents), so these
models are not used to serialise: they are the contract that the OpenAPI document states
and that tests/app check real responses against. Fields are forbidden unless declared, so
a field added to a response without its documentation fails those tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Avatar(Document):
    id: str
    userId: str
    projectId: str
    name: str
    baseImageUrl: str
    thumbnailUrl: str | None
    personaName: str | None
    personaAge: int | None
    personaPersonality: str | None
    personaBackground: str | None
    gender: str | None
    ageRange: str | None
    ethnicity: str | None
    bodyType: str | None
    hairStyle: str | None
    hairColor: str | None
    eyeColor: str | None
    skinTone: str | None
    style: str | None
    sourceType: str
    generationPrompt: str | None
    seedUsed: int | None
    usageCount: int
    lastUsedAt: datetime | None
    createdAt: datetime
    updatedAt: datetime


class Project(Document):
    id: str
    userId: str
    name: str
    description: str | None
    createdAt: datetime
    updatedAt: datetime
    avatars: list[Avatar]
    avatarCount: int


class ProjectRead(Document):
    success: Literal[True]
    project: Project


class ProjectChanged(ProjectRead):
    message: str


class ProjectDeleted(Document):
    success: Literal[True]
    message: str
    deletedAvatars: int


class AvatarRead(Document):
    success: Literal[True]
    avatar: Avatar


class AvatarCreated(AvatarRead):
    message: str


class Deleted(Document):
    success: Literal[True]
    message: str


class Model(Document):
    id: str
    modelKey: str
    modelId: str
    name: str
    description: str | None
    provider: str
    tier: Literal["free", "basic", "pro", "enterprise"]
    creditCost: int
    capabilities: dict[str, Any]
    displayOrder: int


class ModelList(Document):
    success: Literal[True]
    models: list[Model]
    count: int


GenerationStatus = Literal["pending", "processing", "completed", "failed"]


class QueuedGeneration(Document):
    id: str
    status: GenerationStatus
    projectId: str
    modelKey: str
    createdAt: datetime


class GenerationStarted(Document):
    message: str
    generation: QueuedGeneration
    creditUsed: int
    creditBalance: int


class Generation(Document):
    id: str
    projectId: str
    avatarId: str | None
    status: GenerationStatus
    prompt: str
    name: str | None
    modelKey: str | None
    creditUsed: int | None
    seed: int | None
    errorMessage: str | None
    createdAt: datetime
    completedAt: datetime | None
    avatar: Avatar | None = None  # present once the generation made one


class GenerationRead(Document):
    success: Literal[True]
    generation: Generation


class Account(Document):
    id: str
    email: str
    name: str | None
    accountType: Literal["payg", "subscription"]
    subscriptionTier: Literal["free", "basic", "pro", "enterprise"]
    creditBalance: int
    unlimitedUntil: datetime | None  # while ahead, generating is not charged


class Me(Document):
    success: Literal[True]
    user: Account


class Liveness(Document):
    status: Literal["ok"]


class Readiness(Document):
    status: Literal["ready", "unavailable"]
    version: str
    env: str
    checks: dict[str, dict[str, Any]]  # each {ok, message when not ok, ...}
    failed: list[str] | None = None
    message: str | None = None


class ModelsHealth(Document):
    status: Literal["healthy", "unhealthy"]
    modelCount: int | None  # None when the database did not answer
    expected: int
    models: list[str] | None = None
    message: str | None = None
