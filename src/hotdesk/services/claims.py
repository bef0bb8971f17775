"""Connect, disconnect, release and the waiting queue (C2-C6, L1-L4)."""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hotdesk.db.models import DesktopRow, PoolRow, UserRow
from hotdesk.domain.claims import ClaimOutcome, ClaimSituation, decide_claim
from hotdesk.domain.errors import Conflict
from hotdesk.domain.states import DesktopState
from hotdesk.observability.metrics import CLAIM_SECONDS
from hotdesk.services.cards import Card, card_for, card_with, my_card, my_cards
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.events import record_event
from hotdesk.services.intents import add_desktop_intent, choose_datastore, count_live
from hotdesk.services.lookup import (
    ensure_entitled,
    get_pool,
    held_desktop,
    lock_pool,
)
from hotdesk.services.queue import (
    PROVISIONING,
    end_entry,
    enqueue,
    expire_stale_entries,
    fresh_after,
    serve_queue,
    take_idle,
    waiting_count,
    waiting_entry,
)
from hotdesk.services.sessions import end_session, release_desktop, start_session_if_ready

S = DesktopState

__all__ = [
    "Card",
    "cancel_wait",
    "connect",
    "disconnect",
    "end_session",
    "expire_stale_entries",
    "my_card",
    "my_cards",
    "release",
    "release_desktop",
    "serve_queue",
]


def connect(ctx: BrokerContext, actor: Actor, pool_name: str) -> Card:
    """Connect: reconnect, claim an idle desktop, create one, or wait in the queue (C2-C6).

    One transaction; a unique index makes a second desktop for the same user impossible.
    """
    started = time.perf_counter()
    for attempt in range(5):
        try:
            with ctx.db.write() as session:
                now = ctx.now()
                pool = get_pool(session, actor.tenant_id, pool_name)
                user_id = ensure_entitled(session, pool, actor)
                card = _connect_in_tx(session, ctx, pool, actor, user_id, now)
            break
        except IntegrityError:
            if attempt == 4:
                raise
    ctx.wakeups.notify(card.pool_id)
    CLAIM_SECONDS.labels(outcome=card.outcome or "unknown").observe(time.perf_counter() - started)
    return card


def _connect_in_tx(
    session: Session, ctx: BrokerContext, pool: PoolRow, actor: Actor, user_id: str, now: datetime
) -> Card:
    _lock_user(session, user_id)
    held = held_desktop(session, pool.id, user_id)
    if held is None and pool.draining:
        raise Conflict(f"pool {pool.name!r} is being deleted: no new desktops")
    entry = waiting_entry(session, pool.id, user_id)
    if entry is not None and entry.last_seen_at < fresh_after(ctx, now):
        end_entry(entry, "expired", now)  # stopped polling: that place is gone, queue anew
        session.flush()
        entry = None
    if held is None and entry is not None:
        entry.last_seen_at = now
        serve_queue(session, ctx, pool, now)
        held = held_desktop(session, pool.id, user_id)
        if held is None:
            return card_with(session, ctx, pool, user_id, now, None, outcome=ClaimOutcome.QUEUED)
    outcome = decide_claim(_situation(session, ctx, pool, held, now))
    if outcome is ClaimOutcome.ASSIGNED_READY:
        held = take_idle(session, pool.id, [S.READY.value], user_id, now)
        if held is None:  # raced with another claim: nothing idle after all
            outcome = ClaimOutcome.QUEUED
    elif outcome is ClaimOutcome.ASSIGNED_PREPARING:
        held = take_idle(session, pool.id, PROVISIONING, user_id, now)
        outcome = outcome if held is not None else ClaimOutcome.QUEUED
    if outcome in (ClaimOutcome.CREATE_ON_DEMAND, ClaimOutcome.QUEUED) and held is None:
        held, outcome = _create_or_enqueue(session, ctx, pool, actor, user_id, now, outcome)
    if held is not None:
        _record_assignment(session, held, actor, outcome, now)
        start_session_if_ready(session, held, actor, now)
    return card_with(session, ctx, pool, user_id, now, held, outcome=outcome)


def _lock_user(session: Session, user_id: str) -> None:
    """One Connect per user at a time (C2, C4): a second one waits, then sees the first's result.

    Without it, two Connects of one user on PostgreSQL could take a desktop and a place in the
    queue at once. A row lock on PostgreSQL; SQLite already runs one writer at a time.
    """
    session.execute(select(UserRow.id).where(UserRow.id == user_id).with_for_update())


def _situation(
    session: Session, ctx: BrokerContext, pool: PoolRow, held: DesktopRow | None, now: datetime
) -> ClaimSituation:
    counts = dict(
        session.execute(
            select(DesktopRow.state, func.count())
            .where(DesktopRow.pool_id == pool.id, DesktopRow.user_id.is_(None))
            .where(DesktopRow.state.in_([S.READY.value, *PROVISIONING]))
            .group_by(DesktopRow.state)
        ).all()
    )
    return ClaimSituation(
        holds_desktop=held is not None,
        ready_idle=int(counts.get(S.READY.value, 0)),
        provisioning_idle=sum(int(counts.get(s, 0)) for s in PROVISIONING),
        total=0,  # checked under the pool lock when it matters
        max=1,
        others_waiting=waiting_count(session, ctx, pool.id, now),
        draining=pool.draining,
    )


def _create_or_enqueue(
    session: Session,
    ctx: BrokerContext,
    pool: PoolRow,
    actor: Actor,
    user_id: str,
    now: datetime,
    outcome: ClaimOutcome,
) -> tuple[DesktopRow | None, ClaimOutcome]:
    pool = lock_pool(session, pool.id)
    nobody_waiting = waiting_count(session, ctx, pool.id, now) == 0
    room = not pool.draining and count_live(session, pool.id) < pool.max_desktops
    if (outcome is ClaimOutcome.CREATE_ON_DEMAND or nobody_waiting) and room:
        desktop = add_desktop_intent(
            session,
            pool,
            user_id=user_id,
            now=now,
            actor=actor,
            reason="created on demand: no idle desktop, room left",
            datastore=choose_datastore(session, pool),
        )
        return desktop, ClaimOutcome.CREATE_ON_DEMAND
    enqueue(session, pool, actor, user_id, now)
    return None, ClaimOutcome.QUEUED


def _record_assignment(
    session: Session, desktop: DesktopRow, actor: Actor, outcome: ClaimOutcome, now: datetime
) -> None:
    if outcome in (ClaimOutcome.RECONNECTED, ClaimOutcome.CREATE_ON_DEMAND):
        return
    record_event(
        session,
        tenant_id=desktop.tenant_id,
        actor=actor,
        kind="assigned",
        now=now,
        reason=f"Connect: {outcome.value}",
        pool_id=desktop.pool_id,
        desktop_id=desktop.id,
        data={"user_id": desktop.user_id},
    )


def disconnect(ctx: BrokerContext, actor: Actor, pool_name: str) -> Card:
    """End the user's session; the retention clock starts (L1)."""
    with ctx.db.write() as session:
        now = ctx.now()
        pool = get_pool(session, actor.tenant_id, pool_name)
        user_id = ensure_entitled(session, pool, actor)
        desktop = held_desktop(session, pool.id, user_id)
        if desktop is not None and desktop.state == S.CONNECTED.value:
            end_session(session, desktop, actor=actor, now=now, reason="session ended by user")
        card = card_for(session, ctx, pool, user_id, now)
    return card


def release(ctx: BrokerContext, actor: Actor, pool_name: str) -> Card:
    """The user gives the desktop back now: it is destroyed and replaced; or leaves the queue."""
    with ctx.db.write() as session:
        now = ctx.now()
        pool = get_pool(session, actor.tenant_id, pool_name)
        user_id = ensure_entitled(session, pool, actor)
        desktop = held_desktop(session, pool.id, user_id)
        if desktop is not None:
            release_desktop(session, desktop, actor=actor, now=now, reason="released by user")
        entry = waiting_entry(session, pool.id, user_id)
        if entry is not None:
            end_entry(entry, "cancelled", now)
        card = card_for(session, ctx, pool, user_id, now)
    ctx.wakeups.notify(pool.id)
    return card


def cancel_wait(ctx: BrokerContext, actor: Actor, pool_name: str) -> Card:
    """Leave the waiting queue of a pool."""
    with ctx.db.write() as session:
        now = ctx.now()
        pool = get_pool(session, actor.tenant_id, pool_name)
        user_id = ensure_entitled(session, pool, actor)
        entry = waiting_entry(session, pool.id, user_id)
        if entry is None:
            raise Conflict(f"you are not waiting for pool {pool_name!r}")
        end_entry(entry, "cancelled", now)
        card = card_for(session, ctx, pool, user_id, now)
    return card
