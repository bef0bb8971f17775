"""Base classes shared by every schema, and the error body."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

#: Whole numbers must be JSON numbers (``true`` or ``"5"`` are refused).
Int = StrictInt
#: Booleans must be JSON booleans.
Bool = StrictBool
#: An object name as used in URLs (the services check the exact rules).
Name = Annotated[str, Field(min_length=1, max_length=63)]


class InputSchema(BaseModel):
    """A request body: unknown fields are refused, so typos name the field."""

    model_config = ConfigDict(extra="forbid")


class ReadSchema(BaseModel):
    """A response body, buildable from ORM rows and dataclasses."""

    model_config = ConfigDict(from_attributes=True)


class ErrorRead(BaseModel):
    """Every error answer: a message, and for 422 the dotted path of the offending field."""

    detail: str
    field: str | None = None


class FieldErrorRead(BaseModel):
    """One invalid field of a request."""

    field: str
    detail: str


class ValidationErrorRead(ErrorRead):
    """422: the first bad field in ``field``; malformed requests list every one in ``errors``."""

    errors: list[FieldErrorRead] | None = None


def reject_null(value: object) -> object:
    """Field validator for partial updates: a field that is sent may not be ``null``."""
    if value is None:
        raise ValueError("may not be null (leave the field out to keep its value)")
    return value
