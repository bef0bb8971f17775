"""``/desktops``, ``/operations`` and ``/events``: what administrators do to desktops (O1, O2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hotdesk.api.deps import AdminActor, Ctx, CurrentActor
from hotdesk.api.routers.common import desktop_reads, event_reads, find_desktop
from hotdesk.api.schemas.desktops import (
    DesktopRead,
    EventRead,
    OperationCreate,
    OperationRead,
    ReleaseCreate,
)
from hotdesk.services import operations, pools

router = APIRouter(tags=["desktops"])

Limit = Annotated[int, Query(description="at most this many events (1-1000)")]
Before = Annotated[
    int | None, Query(ge=0, le=2**63 - 1, description="only events older than this event id")
]
Force = Annotated[bool, Query(description="also when the user is connected")]


@router.get("/desktops")
def list_desktops(
    ctx: Ctx,
    actor: AdminActor,
    pool: Annotated[str | None, Query(description="only this pool's desktops")] = None,
) -> list[DesktopRead]:
    """Live desktops of the tenant or of one pool."""
    return desktop_reads(ctx, actor, pools.list_desktops(ctx, actor, pool))


@router.get("/desktops/{desktop_id}")
def get_desktop(desktop_id: str, ctx: Ctx, actor: AdminActor) -> DesktopRead:
    """One live desktop: state, power, user, revision, placement, retention deadline, console."""
    return find_desktop(ctx, actor, desktop_id)


@router.post("/desktops/{desktop_id}/release", status_code=202)
def release_desktop(
    desktop_id: str, ctx: Ctx, actor: AdminActor, body: ReleaseCreate | None = None
) -> DesktopRead:
    """L3 immediate release: destroy an assigned desktop now, skipping retention."""
    force = body.force if body is not None else False
    operations.admin_release(ctx, actor, desktop_id, force=force)
    return find_desktop(ctx, actor, desktop_id)


@router.delete("/desktops/{desktop_id}", status_code=202)
def delete_desktop(
    desktop_id: str, ctx: Ctx, actor: AdminActor, force: Force = False
) -> DesktopRead:
    """O1 delete: destroy any desktop now (a connected one needs ``force=true``)."""
    operations.delete_desktop(ctx, actor, desktop_id, force=force)
    return find_desktop(ctx, actor, desktop_id)


@router.post("/desktops/{desktop_id}/operations", status_code=202, tags=["operations"])
def request_operation(
    desktop_id: str, body: OperationCreate, ctx: Ctx, actor: AdminActor
) -> OperationRead:
    """Queue a power or console-log operation; poll ``GET /operations/{id}`` for its result."""
    operation_id = operations.request_operation(ctx, actor, desktop_id, body.kind)
    return OperationRead.model_validate(operations.get_operation(ctx, actor, operation_id))


@router.get("/operations/{operation_id}", tags=["operations"])
def get_operation(operation_id: str, ctx: Ctx, actor: CurrentActor) -> OperationRead:
    """An operation's state and result (users see those on their own desktop)."""
    return OperationRead.model_validate(operations.get_operation(ctx, actor, operation_id))


@router.get("/desktops/{desktop_id}/events", tags=["events"])
def list_desktop_events(
    desktop_id: str, ctx: Ctx, actor: AdminActor, limit: Limit = 200, before: Before = None
) -> list[EventRead]:
    """The desktop's events, newest first (kept after the desktop is deleted)."""
    rows = pools.list_events(ctx, actor, desktop_id=desktop_id, limit=limit, before=before)
    return event_reads(ctx, actor, rows)


@router.get("/events", tags=["events"])
def list_events(
    ctx: Ctx,
    actor: AdminActor,
    pool: Annotated[str | None, Query(description="only this pool's events")] = None,
    desktop: Annotated[str | None, Query(description="only this desktop's events")] = None,
    limit: Limit = 200,
    before: Before = None,
) -> list[EventRead]:
    """The tenant's events, newest first, optionally for one pool or desktop."""
    rows = pools.list_events(
        ctx, actor, pool_name=pool, desktop_id=desktop, limit=limit, before=before
    )
    return event_reads(ctx, actor, rows)
