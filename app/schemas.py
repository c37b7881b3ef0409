"""Request inputs. Unknown fields are refused (422), as are wrong types and sizes, and
anything PostgreSQL could not take: a NUL character in a string, a number beyond its
column (or, for query numbers, beyond bigint)."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

BIGINT_MAX = 2**63 - 1


class NoNul:
    """A string without NUL: PostgreSQL text cannot hold one, and psycopg would fail the
    query (a 500) rather than say which field. The OpenAPI pattern tells clients (and the
    property-based tests) the same rule that the validator enforces."""

    PATTERN = "^[^\\u0000]*$"

    def __get_pydantic_core_schema__(self, source, handler):
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema, handler):
        return {**handler(schema), "pattern": self.PATTERN}

    @staticmethod
    def check(value: str) -> str:
        if "\x00" in value:
            raise PydanticCustomError("string_nul", "must not contain NUL (\\u0000) characters")
        return value


class ImageUrlRule(NoNul):
    """An http(s) URL, a path on this server or a data:image/ URL (and no NUL)."""

    PREFIXES = ("https://", "http://", "data:image/", "/")
    PATTERN = "^(https?://|data:image/|/)[^\\u0000]*$"

    @staticmethod
    def check(value: str) -> str:
        NoNul.check(value)
        if not value.startswith(ImageUrlRule.PREFIXES):
            raise PydanticCustomError(
                "image_url", "must be an http(s) URL, a path on this server, or a data:image/ URL"
            )
        return value


def text(rule: NoNul | None = None, **constraints) -> type[str]:
    return Annotated[str, StringConstraints(strip_whitespace=True, **constraints), rule or NoNul()]


Name = text(min_length=1, max_length=200)
PersonaName = text(max_length=200)
Short = text(max_length=100)
Long = text(max_length=2000)
Prompt = text(min_length=3, max_length=2000)
ImageUrl = text(ImageUrlRule(), min_length=1, max_length=2_000_000)
# A path segment naming a row (ids are text): anything but NUL; unknown ones are 404.
Ident = Annotated[str, NoNul()]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectCreate(Body):
    name: Name
    description: Long | None = None


class ProjectUpdate(Body):
    # Omitted or a string: null is refused by the type (a project always has a name); the
    # default only stands for "not given", which model_fields_set tells apart.
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    name: Name = None
    description: Long | None = None

    @model_validator(mode="after")
    def _something_to_change(self):
        if not self.model_fields_set:
            raise ValueError("give at least one of: name, description")
        return self


class AvatarAttributes(Body):
    personaName: PersonaName | None = None
    personaAge: Annotated[int, Field(ge=1, le=150)] | None = None
    personaPersonality: Long | None = None
    personaBackground: Long | None = None
    gender: Short | None = None
    ageRange: Short | None = None
    ethnicity: Short | None = None
    bodyType: Short | None = None
    hairStyle: Short | None = None
    hairColor: Short | None = None
    eyeColor: Short | None = None
    skinTone: Short | None = None
    style: Short | None = None

    def attributes(self) -> dict:
        return {
            k: v
            for k, v in self.model_dump(include=set(AvatarAttributes.model_fields)).items()
            if v is not None
        }


class AvatarUpload(AvatarAttributes):
    name: Name
    baseImageUrl: ImageUrl
    thumbnailUrl: ImageUrl | None = None


class GenerateRequest(AvatarAttributes):
    prompt: Prompt
    name: Name | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
