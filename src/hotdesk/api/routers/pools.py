"""``/pools``: define, inspect, entitle, Recreate and drain pools."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hotdesk.api.deps import AdminActor, Ctx
from hotdesk.api.routers.common import desktop_reads, ensure_same_name, event_reads
from hotdesk.api.schemas.desktops import DesktopRead, EventRead
from hotdesk.api.schemas.pools import (
    EntitlementRead,
    EntitlementsRead,
    EntitlementsUpdate,
    PoolCreate,
    PoolRead,
    PoolStatusRead,
    PoolUpdate,
    RecreateRead,
    pool_spec,
)
from hotdesk.domain.errors import NotFound
from hotdesk.services import pools
from hotdesk.services.context import Actor, BrokerContext

router = APIRouter(prefix="/pools", tags=["pools"])

Limit = Annotated[int, Query(description="at most this many events (1-1000)")]
Before = Annotated[
    int | None, Query(ge=0, le=2**63 - 1, description="only events older than this event id")
]


@router.get("")
def list_pools(
    ctx: Ctx,
    actor: AdminActor,
    status: Annotated[bool, Query(description="include each pool's status")] = False,
) -> list[PoolRead]:
    """Live pools of the tenant (draining ones included), optionally with their status."""
    out = []
    for row in pools.list_pools(ctx, actor):
        try:
            current = pools.pool_status(ctx, actor, row.name) if status else None
        except NotFound:  # deleted meanwhile
            continue
        out.append(PoolRead.of(row, current))
    return out


@router.post("", status_code=201)
def create_pool(body: PoolCreate, ctx: Ctx, actor: AdminActor) -> PoolRead:
    """Create a pool (P1); 422 names the first bad field (P2), 409 if the name is taken."""
    row, _ = pools.save_pool(ctx, actor, pool_spec(body.model_dump()), create=True)
    return PoolRead.of(row)


@router.get("/{name}")
def get_pool(name: str, ctx: Ctx, actor: AdminActor) -> PoolRead:
    """One pool's definition and status."""
    return PoolRead.of(pools.get_pool_row(ctx, actor, name), pools.pool_status(ctx, actor, name))


@router.put("/{name}")
def update_pool(name: str, body: PoolUpdate, ctx: Ctx, actor: AdminActor) -> PoolRead:
    """Change a pool; fields left out keep their value. An invalid edit changes nothing (P2)."""
    ensure_same_name(name, body.name)
    current = pools.get_pool_row(ctx, actor, name)
    fields = {**current.spec, **body.model_dump(exclude_unset=True, exclude={"name"})}
    row, _ = pools.save_pool(ctx, actor, pool_spec(fields), create=False)
    return PoolRead.of(row)


@router.delete("/{name}", status_code=202)
def delete_pool(name: str, ctx: Ctx, actor: AdminActor) -> PoolStatusRead:
    """Drain the pool (P4): no new claims, assigned desktops finish, then every VM goes."""
    pools.delete_pool(ctx, actor, name)
    return PoolStatusRead.of(pools.pool_status(ctx, actor, name))


@router.get("/{name}/status")
def pool_status(name: str, ctx: Ctx, actor: AdminActor) -> PoolStatusRead:
    """Counts by state, queue length, provisioning health and the current revision."""
    return PoolStatusRead.of(pools.pool_status(ctx, actor, name))


@router.get("/{name}/entitlements")
def get_entitlements(name: str, ctx: Ctx, actor: AdminActor) -> EntitlementsRead:
    """The pool's entitlement lines and its effective (de-duplicated) users (C1)."""
    return _entitlements(ctx, actor, name)


@router.put("/{name}/entitlements")
def set_entitlements(
    name: str, body: EntitlementsUpdate, ctx: Ctx, actor: AdminActor
) -> EntitlementsRead:
    """Replace the pool's entitlement lines; unknown names are refused (422)."""
    pools.set_entitlements(ctx, actor, name, [line.line() for line in body.entitlements])
    return _entitlements(ctx, actor, name)


def _entitlements(ctx: BrokerContext, actor: Actor, name: str) -> EntitlementsRead:
    lines, users = pools.get_entitlements(ctx, actor, name)
    return EntitlementsRead(
        entitlements=[EntitlementRead.model_validate(line) for line in lines],
        effective_users=users,
    )


@router.post("/{name}/recreate")
def recreate_pool(name: str, ctx: Ctx, actor: AdminActor) -> RecreateRead:
    """T2: replace failed desktops and idle ones not on the current template revision."""
    return RecreateRead(replaced=pools.recreate_pool(ctx, actor, name))


@router.get("/{name}/desktops")
def list_pool_desktops(name: str, ctx: Ctx, actor: AdminActor) -> list[DesktopRead]:
    """The pool's live desktops."""
    return desktop_reads(ctx, actor, pools.list_desktops(ctx, actor, name))


@router.get("/{name}/events")
def list_pool_events(
    name: str, ctx: Ctx, actor: AdminActor, limit: Limit = 200, before: Before = None
) -> list[EventRead]:
    """The pool's events, newest first (O2); page with ``before``."""
    rows = pools.list_events(ctx, actor, pool_name=name, limit=limit, before=before)
    return event_reads(ctx, actor, rows)
