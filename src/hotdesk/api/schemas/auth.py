"""Login, logout and "who am I"."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from hotdesk.api.schemas.common import InputSchema, Name, ReadSchema


class LoginCreate(InputSchema):
    """A password login; the answer carries a bearer token."""

    tenant: Name = "default"
    username: Name
    password: str = Field(min_length=1, max_length=1024)


class IdentityRead(ReadSchema):
    """Who the caller is."""

    username: str
    role: str
    tenant: str
    display_name: str | None = None


class TokenRead(ReadSchema):
    """A new bearer token: send it as ``Authorization: Bearer <token>``."""

    token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: IdentityRead
