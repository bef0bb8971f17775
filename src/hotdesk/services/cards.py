"""What a user sees of each pool: a card (seed 000 §3.2, L4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from hotdesk.db.models import DesktopRow, PoolRow
from hotdesk.domain.claims import CardState, ClaimOutcome
from hotdesk.domain.pools import retention_deadline
from hotdesk.domain.states import PROVISIONING_STATES, DesktopState
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.entitlements import entitled_pools
from hotdesk.services.lookup import desktop_view, ensure_entitled, get_pool, held_desktop
from hotdesk.services.queue import fresh_after, queue_position, waiting_count, waiting_entry

S = DesktopState


@dataclass(frozen=True)
class Card:
    """What a user sees of one pool (seed 000 §3.2)."""

    pool_id: str
    pool_name: str
    state: CardState
    desktop_id: str | None = None
    desktop_name: str | None = None
    desktop_state: str | None = None
    position: int | None = None
    waiting: int | None = None
    deadline: datetime | None = None
    retention_seconds: float = 0.0
    progress: dict[str, Any] | None = None
    outcome: str | None = None


def my_cards(ctx: BrokerContext, actor: Actor) -> list[Card]:
    """One card per pool the user is entitled to. Asking keeps the user's place in queues."""
    with ctx.db.write() as session:
        now = ctx.now()
        cards = []
        for pool in entitled_pools(session, actor):
            assert actor.user_id is not None
            entry = waiting_entry(session, pool.id, actor.user_id)
            if entry is not None and entry.last_seen_at >= fresh_after(ctx, now):
                entry.last_seen_at = now
            cards.append(card_for(session, ctx, pool, actor.user_id, now))
        return cards


def my_card(ctx: BrokerContext, actor: Actor, pool_name: str) -> Card:
    """The user's card for one pool (keeps the user's place in the queue)."""
    with ctx.db.write() as session:
        now = ctx.now()
        pool = get_pool(session, actor.tenant_id, pool_name)
        user_id = ensure_entitled(session, pool, actor)
        entry = waiting_entry(session, pool.id, user_id)
        if entry is not None and entry.last_seen_at >= fresh_after(ctx, now):
            entry.last_seen_at = now
        return card_for(session, ctx, pool, user_id, now)


def card_for(
    session: Session,
    ctx: BrokerContext,
    pool: PoolRow,
    user_id: str,
    now: datetime,
    *,
    outcome: ClaimOutcome | None = None,
) -> Card:
    """The user's card for one pool."""
    desktop = held_desktop(session, pool.id, user_id)
    return card_with(session, ctx, pool, user_id, now, desktop, outcome=outcome)


def card_with(
    session: Session,
    ctx: BrokerContext,
    pool: PoolRow,
    user_id: str,
    now: datetime,
    desktop: DesktopRow | None,
    *,
    outcome: ClaimOutcome | None = None,
) -> Card:
    """The card, given the desktop the user holds in the pool (already looked up)."""
    retention = timedelta(seconds=pool.retention_seconds)
    base = {
        "pool_id": pool.id,
        "pool_name": pool.name,
        "retention_seconds": pool.retention_seconds,
        "outcome": outcome.value if outcome else None,
    }
    if desktop is not None:
        state = DesktopState(desktop.state)
        grace = timedelta(seconds=ctx.settings.claim_grace_seconds)
        return Card(
            **base,  # type: ignore[arg-type]
            state=_card_state(state),
            desktop_id=desktop.id,
            desktop_name=desktop.display_name,
            desktop_state=desktop.state,
            deadline=retention_deadline(desktop_view(desktop), retention, claim_grace=grace),
            progress=_progress(desktop) if state in PROVISIONING_STATES else None,
        )
    entry = waiting_entry(session, pool.id, user_id)
    if entry is not None and entry.last_seen_at >= fresh_after(ctx, now):
        return Card(
            **base,  # type: ignore[arg-type]
            state=CardState.WAITING,
            position=queue_position(session, ctx, entry, now),
            waiting=waiting_count(session, ctx, pool.id, now),
        )
    return Card(**base, state=CardState.UNASSIGNED)  # type: ignore[arg-type]


def _card_state(state: DesktopState) -> CardState:
    if state in PROVISIONING_STATES:
        return CardState.PREPARING
    return {
        S.ASSIGNED: CardState.READY,
        S.CONNECTED: CardState.CONNECTED,
        S.DISCONNECTED: CardState.DISCONNECTED,
    }.get(state, CardState.UNASSIGNED)


def _progress(desktop: DesktopRow) -> dict[str, Any]:
    if desktop.state == S.CREATING.value:
        stage = "waiting for the platform" if desktop.attempts else "creating the VM"
        return {
            "stage": stage,
            "percent": 20,
            "attempts": desktop.attempts,
            "last_error": desktop.last_error,
        }
    return {"stage": "booting", "percent": 60, "attempts": desktop.attempts, "last_error": None}
