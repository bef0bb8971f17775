"""Users, groups and organisations of a tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from hotdesk.api.schemas.common import Bool, InputSchema, Name, ReadSchema, reject_null
from hotdesk.db.models import UserRow

Role = Literal["user", "tenant-admin"]


class UserCreate(InputSchema):
    """A new local user; without a password the user can only use issued tokens."""

    username: Name
    password: str | None = Field(default=None, max_length=1024)
    role: Role = "user"
    display_name: str | None = Field(default=None, max_length=200)
    organization: str | None = None
    disabled: Bool = False


class UserUpdate(InputSchema):
    """Changes to a user; fields left out keep their value."""

    username: Name | None = Field(default=None, description="if given, must match the URL")
    password: str | None = Field(default=None, max_length=1024)
    role: Role | None = None
    display_name: str | None = Field(default=None, max_length=200)
    organization: str | None = None
    disabled: Bool | None = None

    _not_null = field_validator("password", "role", "disabled")(reject_null)


class UserRead(ReadSchema):
    """A user (never the password hash)."""

    username: str
    role: str
    display_name: str | None
    organization: str | None
    disabled: bool
    has_password: bool
    created_at: datetime

    @classmethod
    def of(cls, row: UserRow, org_names: dict[str, str]) -> UserRead:
        """Build from a user row and the tenant's organisation names by id."""
        return cls(
            username=row.username,
            role=row.role,
            display_name=row.display_name,
            organization=org_names.get(row.organization_id) if row.organization_id else None,
            disabled=row.disabled,
            has_password=bool(row.password_hash),
            created_at=row.created_at,
        )


class GroupCreate(InputSchema):
    """A new group and its members (user names)."""

    name: Name
    members: list[str] = Field(default_factory=list)


class GroupUpdate(InputSchema):
    """A group's new member list (replaces the current one when given)."""

    name: Name | None = Field(default=None, description="if given, must match the URL")
    members: list[str] | None = None

    _not_null = field_validator("members")(reject_null)


class GroupRead(ReadSchema):
    """A group and its members' user names."""

    name: str
    members: list[str]
    created_at: datetime


class OrganizationCreate(InputSchema):
    """A new organisation, placed under ``parent`` (or at the root)."""

    name: Name
    parent: str | None = None
    display_name: str | None = Field(default=None, max_length=200)


class OrganizationUpdate(InputSchema):
    """Changes to an organisation; ``parent: null`` moves it to the root."""

    name: Name | None = Field(default=None, description="if given, must match the URL")
    parent: str | None = None
    display_name: str | None = Field(default=None, max_length=200)


class OrganizationRead(ReadSchema):
    """An organisation and its parent's name."""

    name: str
    parent: str | None
    display_name: str | None
    created_at: datetime
