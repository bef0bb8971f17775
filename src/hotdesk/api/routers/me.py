"""``/me``: the user's portal: pool cards, Connect, the waiting queue, own desktop operations."""

from __future__ import annotations

from fastapi import APIRouter

from hotdesk.api.deps import Ctx, CurrentActor
from hotdesk.api.schemas.desktops import OperationCreate, OperationRead
from hotdesk.api.schemas.me import CardRead
from hotdesk.services import claims, operations

router = APIRouter(prefix="/me", tags=["me"])


@router.get("/pools")
def my_pools(ctx: Ctx, actor: CurrentActor) -> list[CardRead]:
    """One card per pool the user is entitled to (asking keeps the user's place in queues)."""
    return [CardRead.of(card, ctx.now()) for card in claims.my_cards(ctx, actor)]


@router.get("/pools/{name}")
def my_pool(name: str, ctx: Ctx, actor: CurrentActor) -> CardRead:
    """The user's card for one pool (403 if not entitled)."""
    return CardRead.of(claims.my_card(ctx, actor, name), ctx.now())


@router.post("/pools/{name}/connect")
def connect(name: str, ctx: Ctx, actor: CurrentActor) -> CardRead:
    """Connect: the same desktop again, an idle one, a new one, or a place in the queue."""
    return CardRead.of(claims.connect(ctx, actor, name), ctx.now())


@router.post("/pools/{name}/disconnect")
def disconnect(name: str, ctx: Ctx, actor: CurrentActor) -> CardRead:
    """End the session; the desktop is kept for the pool's retention period (L1, L4)."""
    return CardRead.of(claims.disconnect(ctx, actor, name), ctx.now())


@router.post("/pools/{name}/release")
def release(name: str, ctx: Ctx, actor: CurrentActor) -> CardRead:
    """Give the desktop back now (it is destroyed and replaced), or leave the queue."""
    return CardRead.of(claims.release(ctx, actor, name), ctx.now())


@router.post("/pools/{name}/cancel")
def cancel(name: str, ctx: Ctx, actor: CurrentActor) -> CardRead:
    """Leave the pool's waiting queue (409 if not waiting)."""
    return CardRead.of(claims.cancel_wait(ctx, actor, name), ctx.now())


@router.post("/desktops/{desktop_id}/operations", status_code=202)
def request_operation(
    desktop_id: str, body: OperationCreate, ctx: Ctx, actor: CurrentActor
) -> OperationRead:
    """Power operations on the user's own desktop, as the pool's permissions allow (C8)."""
    operation_id = operations.request_operation(ctx, actor, desktop_id, body.kind)
    return OperationRead.model_validate(operations.get_operation(ctx, actor, operation_id))
