"""Request inputs. Unknown fields are refused (422), as are wrong types and sizes, and
anything PostgreSQL could not take: a NUL character in a string, a number beyond its
column (or, for query numbers, beyond bigint).

Every rule the validators apply is in the OpenAPI document too, in a form any JSON Schema
engine reads alike, so that a request valid by the document is accepted and one invalid
by it is refused (tests/app/test_property.py holds the app to that)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError, core_schema

BIGINT_MAX = 2**63 - 1
# What str.strip() takes off, listed: the document's patterns name these characters one by
# one, as regex engines disagree on what \s means (Python's includes \x1c-\x1f).
BLANKS = "".join(c for c in map(chr, range(0x10000)) if c.isspace())


def _char_class(chars: str, negate: bool = False) -> str:
    """A regex class of these characters as \\uXXXX escapes, runs as ranges."""
    points, runs = sorted(map(ord, chars)), []
    for point in points:
        if runs and point == runs[-1][1] + 1:
            runs[-1][1] = point
        else:
            runs.append([point, point])
    body = "".join(f"\\u{a:04x}" if a == b else f"\\u{a:04x}-\\u{b:04x}" for a, b in runs)
    return f"[{'^' * negate}{body}]"


_BLANK, _SOLID, _ANY = _char_class(BLANKS), _char_class(BLANKS + "\0", True), "[^\\u0000]"


class Text:
    """A string without NUL (PostgreSQL text cannot hold one, and psycopg would fail the
    query rather than name the field), trimmed of blanks at both ends, with at least
    `min_solid` characters left. Lengths (StringConstraints) count the string as sent."""

    def __init__(self, min_solid: int = 0):
        self.min_solid = min_solid

    def pattern(self) -> str:
        if self.min_solid == 0:
            return f"^{_ANY}*$"
        if self.min_solid == 1:
            return f"^{_BLANK}*{_SOLID}{_ANY}*$"
        middle = f"{_ANY}{{{self.min_solid - 2},}}"
        return f"^{_BLANK}*{_SOLID}{middle}{_SOLID}{_BLANK}*$"

    def __get_pydantic_core_schema__(self, source, handler):
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema, handler):
        return {**handler(schema), "pattern": self.pattern()}

    def check(self, value: str) -> str:
        if "\0" in value:
            raise PydanticCustomError("string_nul", "must not contain NUL (\\u0000) characters")
        value = value.strip(BLANKS)
        if len(value) < self.min_solid:
            raise PydanticCustomError(
                "string_blank",
                "must not be blank"
                if self.min_solid == 1
                else f"must have at least {self.min_solid} characters besides blanks at the ends",
            )
        return value


class ImageUrlText(Text):
    """An http(s) URL, a path on this server or a data:image/ URL, once trimmed."""

    PREFIXES = ("https://", "http://", "data:image/", "/")

    def pattern(self) -> str:
        return f"^{_BLANK}*(https?://|data:image/|/){_ANY}*$"

    def check(self, value: str) -> str:
        value = super().check(value)
        if not value.startswith(self.PREFIXES):
            raise PydanticCustomError(
                "image_url", "must be an http(s) URL, a path on this server, or a data:image/ URL"
            )
        return value


def text(max_length: int, min_solid: int = 0, rule: type[Text] = Text):
    return Annotated[str, StringConstraints(max_length=max_length), rule(min_solid)]


Name = text(200, min_solid=1)
PersonaName = text(200)
Short = text(100)
Long = text(2000)
Prompt = text(2000, min_solid=3)
ImageUrl = text(2_000_000, rule=ImageUrlText)
# A path segment naming a row (ids are text): anything but NUL; unknown ones are 404.
Ident = Annotated[str, Text()]


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
