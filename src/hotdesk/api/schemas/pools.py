"""Pools (mirroring ``domain.pools.PoolSpec``), their status, entitlements and Recreate."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from hotdesk.api.schemas.common import Bool, InputSchema, Int, Name, ReadSchema, reject_null
from hotdesk.db.models import PoolRow
from hotdesk.domain.durations import parse_duration
from hotdesk.domain.errors import ValidationFailed
from hotdesk.domain.pools import PermissionRule, PoolSpec
from hotdesk.services.pools import EntitlementLine, PoolStatus

RETENTION_HELP = "ISO 8601 duration a disconnected desktop is kept, e.g. PT30M, PT4H, P1D"


class PermissionBody(InputSchema):
    """C8: what a user (by name) or a role may do with the pool's desktops."""

    user: str | None = None
    role: str | None = None
    may: list[str] = Field(
        default_factory=list, description="accessConsole, start, stop, restart, reset"
    )


class PoolCreate(InputSchema):
    """A new pool (P1). Validation names the first bad field (P2)."""

    name: Name
    provider: str
    template: str
    max_desktops: Int
    warm_desktops: Int
    retention: str = Field(description=RETENTION_HELP)
    name_pattern: str = "desktop-{SEQUENCE}"
    sequence_start: Int = 1
    display_name_pattern: str | None = None
    target: str | None = None
    project: str | None = None
    auto_create_project: Bool = False
    network: str | None = None
    datastores: list[str] = Field(default_factory=list)
    provision_concurrency: Int = 2
    login_on_assignment: Bool = False
    permissions: list[PermissionBody] = Field(default_factory=list)


class PoolUpdate(InputSchema):
    """Changes to a pool: fields left out keep their value; an invalid edit changes nothing."""

    name: Name | None = Field(default=None, description="if given, must match the URL")
    provider: str | None = None
    template: str | None = None
    max_desktops: Int | None = None
    warm_desktops: Int | None = None
    retention: str | None = Field(default=None, description=RETENTION_HELP)
    name_pattern: str | None = None
    sequence_start: Int | None = None
    display_name_pattern: str | None = None
    target: str | None = None
    project: str | None = None
    auto_create_project: Bool | None = None
    network: str | None = None
    datastores: list[str] | None = None
    provision_concurrency: Int | None = None
    login_on_assignment: Bool | None = None
    permissions: list[PermissionBody] | None = None

    _not_null = field_validator(
        "provider",
        "template",
        "max_desktops",
        "warm_desktops",
        "retention",
        "name_pattern",
        "sequence_start",
        "auto_create_project",
        "datastores",
        "provision_concurrency",
        "login_on_assignment",
        "permissions",
    )(reject_null)


def pool_spec(fields: dict[str, Any]) -> PoolSpec:
    """A domain ``PoolSpec`` from body fields; a bad retention is a ``ValidationFailed``."""
    data = dict(fields)
    try:
        data["retention"] = parse_duration(data["retention"])
    except ValueError as exc:
        raise ValidationFailed("retention", str(exc)) from exc
    data["datastores"] = tuple(data.get("datastores") or ())
    data["permissions"] = tuple(
        PermissionRule(may=tuple(p.get("may") or ()), user=p.get("user"), role=p.get("role"))
        for p in data.get("permissions") or ()
    )
    return PoolSpec(**data)


class ImageRead(ReadSchema):
    """T3: a template revision's image published on one datastore, and how far along it is."""

    revision_id: str
    datastore: str
    state: str  # publishing | ready | failed
    error: str | None


class PoolStatusRead(ReadSchema):
    """Counts by state, sizing and provisioning health of a pool."""

    name: str
    ready: int
    provisioning: int
    assigned_connected: int
    assigned_disconnected: int
    failed: int
    deleting: int
    total: int
    idle: int
    waiting: int
    warm: int
    max: int
    retention: str
    draining: bool
    provisioning_failing: bool
    provisioning_error: str | None
    provision_failures: int
    current_revision: int | None
    generation: int
    images: list[ImageRead] = []

    @classmethod
    def of(cls, status: PoolStatus) -> PoolStatusRead:
        """Flatten a service ``PoolStatus``."""
        c = status.counts
        return cls(
            name=status.name,
            ready=c.ready,
            provisioning=c.provisioning,
            assigned_connected=c.assigned_connected,
            assigned_disconnected=c.assigned_disconnected,
            failed=c.failed,
            deleting=c.deleting,
            total=c.total,
            idle=c.idle,
            waiting=c.waiting,
            warm=status.warm,
            max=status.max,
            retention=status.retention,
            draining=status.draining,
            provisioning_failing=status.provisioning_failing,
            provisioning_error=status.provisioning_error,
            provision_failures=status.provision_failures,
            current_revision=status.current_revision,
            generation=status.generation,
            images=[
                ImageRead(
                    revision_id=i.revision_id, datastore=i.datastore, state=i.state, error=i.error
                )
                for i in status.images
            ],
        )


class PermissionRead(ReadSchema):
    """One permission rule of a pool."""

    user: str | None = None
    role: str | None = None
    may: list[str]


class PoolRead(ReadSchema):
    """A pool's definition, and its status when asked for."""

    id: str
    name: str
    provider: str
    template: str
    max_desktops: int
    warm_desktops: int
    retention: str
    name_pattern: str
    sequence_start: int
    display_name_pattern: str | None
    target: str | None
    project: str | None
    auto_create_project: bool
    network: str | None
    datastores: list[str]
    provision_concurrency: int
    login_on_assignment: bool
    permissions: list[PermissionRead]
    draining: bool
    generation: int
    created_at: datetime
    updated_at: datetime
    status: PoolStatusRead | None = None

    @classmethod
    def of(cls, row: PoolRow, status: PoolStatus | None = None) -> PoolRead:
        """Build from a pool row (its stored spec) and an optional status."""
        spec = {k: v for k, v in row.spec.items() if k in cls.model_fields}
        return cls(
            **spec,
            id=row.id,
            draining=row.draining,
            generation=row.generation,
            created_at=row.created_at,
            updated_at=row.updated_at,
            status=PoolStatusRead.of(status) if status else None,
        )


class EntitlementBody(InputSchema):
    """C1: a user, group or organisation (optionally with its sub-organisations)."""

    kind: Literal["user", "group", "organization"]
    name: str
    include_suborganizations: Bool = False

    def line(self) -> EntitlementLine:
        """The service's entitlement line."""
        return EntitlementLine(self.kind, self.name, self.include_suborganizations)


class EntitlementsUpdate(InputSchema):
    """The full list of a pool's entitlement lines (replaces the current list)."""

    entitlements: list[EntitlementBody]


class EntitlementRead(ReadSchema):
    """One entitlement line."""

    kind: str
    name: str
    include_suborganizations: bool


class EntitlementsRead(ReadSchema):
    """A pool's entitlement lines and the de-duplicated users they add up to."""

    entitlements: list[EntitlementRead]
    effective_users: list[str]


class RecreateRead(ReadSchema):
    """T2 Recreate: the desktops sent to destruction (to be replaced)."""

    replaced: list[str]
