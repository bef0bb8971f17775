"""Desktops, operations on them and the event log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from hotdesk.api.schemas.common import Bool, InputSchema, ReadSchema
from hotdesk.db.models import DesktopRow, PoolRow
from hotdesk.domain.pools import retention_deadline
from hotdesk.services.lookup import desktop_view

OperationKind = Literal["power-on", "power-off", "restart", "force-restart", "console-log"]


class DesktopRead(ReadSchema):
    """One desktop as an administrator sees it."""

    id: str
    pool: str | None
    name: str
    display_name: str
    sequence: int
    state: str
    power_state: str | None
    user: str | None
    template_revision: int | None
    host: str | None
    datastore: str | None
    retention_deadline: datetime | None
    last_error: str | None
    console: dict[str, Any] | None
    created_at: datetime
    state_since: datetime
    assigned_at: datetime | None

    @classmethod
    def of(
        cls,
        row: DesktopRow,
        *,
        user: str | None,
        revision: int | None,
        pool: PoolRow | None,
        claim_grace: timedelta,
    ) -> DesktopRead:
        """Build from a desktop row, its user's name, revision number and pool."""
        deadline = None
        if pool is not None:
            retention = timedelta(seconds=pool.retention_seconds)
            deadline = retention_deadline(desktop_view(row), retention, claim_grace=claim_grace)
        return cls(
            id=row.id,
            pool=pool.name if pool else None,
            name=row.name,
            display_name=row.display_name,
            sequence=row.sequence,
            state=row.state,
            power_state=row.power_state,
            user=user,
            template_revision=revision,
            host=row.host,
            datastore=row.datastore,
            retention_deadline=deadline,
            last_error=row.last_error,
            console=row.console,
            created_at=row.created_at,
            state_since=row.state_since,
            assigned_at=row.assigned_at,
        )


class ReleaseCreate(InputSchema):
    """L3 immediate release; a connected desktop needs ``force``."""

    force: Bool = False


class OperationCreate(InputSchema):
    """O1: a power or log operation, carried out by the reconciler."""

    kind: OperationKind


class OperationRead(ReadSchema):
    """An operation's state (pending, running, done, failed) and result (e.g. the log)."""

    id: str
    desktop_id: str
    kind: str
    state: str
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None = None
    result: str | None = None


class EventRead(ReadSchema):
    """O2: one recorded change or operation: who, when, why."""

    id: int
    at: datetime
    actor: str
    kind: str
    pool_id: str | None
    pool: str | None = None
    desktop_id: str | None
    from_state: str | None
    to_state: str | None
    reason: str
    data: dict[str, Any] | None
