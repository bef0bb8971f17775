"""Providers (platform instances) and versioned templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from hotdesk.api.schemas.common import InputSchema, Int, Name, ReadSchema, reject_null
from hotdesk.db.models import TemplateRevisionRow, TemplateRow


class ProviderCreate(InputSchema):
    """A new provider: a driver kind and its connection settings."""

    name: Name
    kind: str = Field(description="driver kind: sim (a SIMULATOR, no real VMs), libvirt, ...")
    config: dict[str, Any] = Field(default_factory=dict)
    max_concurrent_provisioning: Int = 10


class ProviderUpdate(InputSchema):
    """Changes to a provider; fields left out keep their value (the kind cannot change)."""

    name: Name | None = Field(default=None, description="if given, must match the URL")
    kind: str | None = None
    config: dict[str, Any] | None = None
    max_concurrent_provisioning: Int | None = None

    _not_null = field_validator("kind", "config", "max_concurrent_provisioning")(reject_null)


class ProviderRead(ReadSchema):
    """A provider with its last health check (S1)."""

    name: str
    kind: str
    config: dict[str, Any]
    max_concurrent_provisioning: int
    health_ok: bool | None = None
    health_detail: str | None = None
    health_facts: dict[str, Any] | None = None
    checked_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class TemplateCreate(InputSchema):
    """A new template: its first revision's spec (image, vcpus, memory_mib, ...)."""

    name: Name
    spec: dict[str, Any]


class TemplateUpdate(InputSchema):
    """A new spec for a template: a changed spec becomes a new revision (T1)."""

    name: Name | None = Field(default=None, description="if given, must match the URL")
    spec: dict[str, Any]


class TemplateRevisionRead(ReadSchema):
    """One immutable revision of a template."""

    number: int
    spec: dict[str, Any]
    created_at: datetime


class TemplateRead(ReadSchema):
    """A template and its current revision."""

    name: str
    current_revision: int | None
    spec: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def of(cls, row: TemplateRow, current: TemplateRevisionRow | None) -> TemplateRead:
        """Build from a template row and its current revision."""
        return cls(
            name=row.name,
            current_revision=current.number if current else None,
            spec=current.spec if current else None,
            created_at=row.created_at,
        )
