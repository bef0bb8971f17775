"""Connect, disconnect, release and the waiting queue (C2-C6, L1-L4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hotdesk.db.models import DesktopRow, PoolRow, QueueEntryRow, SessionRow, UserRow
from hotdesk.domain.claims import CardState, ClaimOutcome, ClaimSituation, decide_claim
from hotdesk.domain.errors import Conflict
from hotdesk.domain.pools import retention_deadline
from hotdesk.domain.states import PROVISIONING_STATES, DesktopState
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.events import move_desktop, record_event
from hotdesk.services.intents import add_desktop_intent, choose_datastore, count_live
from hotdesk.services.lookup import (
    desktop_view,
    ensure_entitled,
    get_pool,
    held_desktop,
    lock_pool,
)

S = DesktopState
PROVISIONING = [s.value for s in PROVISIONING_STATES]


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


def connect(ctx: BrokerContext, actor: Actor, pool_name: str) -> Card:
    """Connect: reconnect, claim an idle desktop, create one, or wait in the queue (C2-C6).

    One transaction; a unique index makes a second desktop for the same user impossible.
    """
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
    return card


def _connect_in_tx(
    session: Session, ctx: BrokerContext, pool: PoolRow, actor: Actor, user_id: str, now: datetime
) -> Card:
    _lock_user(session, user_id)
    held = held_desktop(session, pool.id, user_id)
    if held is None and pool.draining:
        raise Conflict(f"pool {pool.name!r} is being deleted: no new desktops")
    entry = _waiting_entry(session, pool.id, user_id)
    if entry is not None and entry.last_seen_at < _fresh_after(ctx, now):
        _end_entry(entry, "expired", now)  # stopped polling: that place is gone, queue anew
        session.flush()
        entry = None
    if held is None and entry is not None:
        entry.last_seen_at = now
        serve_queue(session, ctx, pool, now)
        held = held_desktop(session, pool.id, user_id)
        if held is None:
            return _card(session, ctx, pool, user_id, now, None, outcome=ClaimOutcome.QUEUED)
    outcome = decide_claim(_situation(session, ctx, pool, held, now))
    if outcome is ClaimOutcome.ASSIGNED_READY:
        held = _take_idle(session, pool.id, [S.READY.value], user_id, now)
        if held is None:  # raced with another claim: nothing idle after all
            outcome = ClaimOutcome.QUEUED
    elif outcome is ClaimOutcome.ASSIGNED_PREPARING:
        held = _take_idle(session, pool.id, PROVISIONING, user_id, now)
        outcome = outcome if held is not None else ClaimOutcome.QUEUED
    if outcome in (ClaimOutcome.CREATE_ON_DEMAND, ClaimOutcome.QUEUED) and held is None:
        held, outcome = _create_or_enqueue(session, ctx, pool, actor, user_id, now, outcome)
    if held is not None:
        _record_assignment(session, held, actor, outcome, now)
        _start_session_if_ready(session, held, actor, now)
    return _card(session, ctx, pool, user_id, now, held, outcome=outcome)


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
        others_waiting=_waiting_count(session, ctx, pool.id, now),
        draining=pool.draining,
    )


def _take_idle(
    session: Session, pool_id: str, states: list[str], user_id: str, now: datetime
) -> DesktopRow | None:
    """Atomically give one idle desktop in ``states`` to the user, in one statement.

    ``UPDATE ... WHERE id = (SELECT ... LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING``: on
    PostgreSQL concurrent claims lock different rows and never wait on each other; on SQLite
    writers are already serialised by ``BEGIN IMMEDIATE``. The row we locked is still idle
    when the outer UPDATE re-checks it, so a lost race cannot happen and no retry is needed.
    """
    candidate = (
        select(DesktopRow.id)
        .where(
            DesktopRow.pool_id == pool_id,
            DesktopRow.user_id.is_(None),
            DesktopRow.state.in_(states),
        )
        .order_by(DesktopRow.state_since, DesktopRow.sequence)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return session.scalars(
        update(DesktopRow)
        .where(
            DesktopRow.id == candidate,
            DesktopRow.user_id.is_(None),
            DesktopRow.state.in_(states),
        )
        .values(user_id=user_id, assigned_at=now, version=DesktopRow.version + 1)
        .returning(DesktopRow)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).one_or_none()


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
    nobody_waiting = _waiting_count(session, ctx, pool.id, now) == 0
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
    _enqueue(session, pool, actor, user_id, now)
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


def _start_session_if_ready(
    session: Session, desktop: DesktopRow, actor: Actor, now: datetime
) -> None:
    state = DesktopState(desktop.state)
    if state not in (S.READY, S.ASSIGNED, S.DISCONNECTED):
        return
    move_desktop(session, desktop, S.CONNECTED, actor=actor, reason="session started", now=now)
    desktop.assigned_at = desktop.assigned_at or now
    session.add(SessionRow(desktop_id=desktop.id, user_id=desktop.user_id, started_at=now))


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


def end_session(
    session: Session, desktop: DesktopRow, *, actor: Actor | str, now: datetime, reason: str
) -> None:
    """Close the open session of a connected desktop and start its retention clock."""
    open_sessions = session.scalars(
        select(SessionRow).where(SessionRow.desktop_id == desktop.id, SessionRow.ended_at.is_(None))
    )
    for row in open_sessions:
        row.ended_at = now
    move_desktop(session, desktop, S.DISCONNECTED, actor=actor, reason=reason, now=now)


def release(ctx: BrokerContext, actor: Actor, pool_name: str) -> Card:
    """The user gives the desktop back now: it is destroyed and replaced; or leaves the queue."""
    with ctx.db.write() as session:
        now = ctx.now()
        pool = get_pool(session, actor.tenant_id, pool_name)
        user_id = ensure_entitled(session, pool, actor)
        desktop = held_desktop(session, pool.id, user_id)
        if desktop is not None:
            release_desktop(session, desktop, actor=actor, now=now, reason="released by user")
        entry = _waiting_entry(session, pool.id, user_id)
        if entry is not None:
            _end_entry(entry, "cancelled", now)
        card = card_for(session, ctx, pool, user_id, now)
    ctx.wakeups.notify(pool.id)
    return card


def release_desktop(
    session: Session, desktop: DesktopRow, *, actor: Actor | str, now: datetime, reason: str
) -> None:
    """End any session and send the desktop to destruction (L2, L3)."""
    for row in session.scalars(
        select(SessionRow).where(SessionRow.desktop_id == desktop.id, SessionRow.ended_at.is_(None))
    ):
        row.ended_at = now
    if desktop.state == S.DELETING.value:
        return
    move_desktop(session, desktop, S.DELETING, actor=actor, reason=reason, now=now)


def cancel_wait(ctx: BrokerContext, actor: Actor, pool_name: str) -> Card:
    """Leave the waiting queue of a pool."""
    with ctx.db.write() as session:
        now = ctx.now()
        pool = get_pool(session, actor.tenant_id, pool_name)
        user_id = ensure_entitled(session, pool, actor)
        entry = _waiting_entry(session, pool.id, user_id)
        if entry is None:
            raise Conflict(f"you are not waiting for pool {pool_name!r}")
        _end_entry(entry, "cancelled", now)
        card = card_for(session, ctx, pool, user_id, now)
    return card


def my_cards(ctx: BrokerContext, actor: Actor) -> list[Card]:
    """One card per pool the user is entitled to. Asking keeps the user's place in queues."""
    from hotdesk.services.pools import entitled_pools

    with ctx.db.write() as session:
        now = ctx.now()
        cards = []
        for pool in entitled_pools(session, actor):
            assert actor.user_id is not None
            entry = _waiting_entry(session, pool.id, actor.user_id)
            if entry is not None and entry.last_seen_at >= _fresh_after(ctx, now):
                entry.last_seen_at = now
            cards.append(card_for(session, ctx, pool, actor.user_id, now))
        return cards


def my_card(ctx: BrokerContext, actor: Actor, pool_name: str) -> Card:
    """The user's card for one pool (keeps the user's place in the queue)."""
    with ctx.db.write() as session:
        now = ctx.now()
        pool = get_pool(session, actor.tenant_id, pool_name)
        user_id = ensure_entitled(session, pool, actor)
        entry = _waiting_entry(session, pool.id, user_id)
        if entry is not None and entry.last_seen_at >= _fresh_after(ctx, now):
            entry.last_seen_at = now
        return card_for(session, ctx, pool, user_id, now)


# --- the waiting queue ---------------------------------------------------------------


def _waiting_entry(session: Session, pool_id: str, user_id: str) -> QueueEntryRow | None:
    return session.scalar(
        select(QueueEntryRow).where(
            QueueEntryRow.pool_id == pool_id,
            QueueEntryRow.user_id == user_id,
            QueueEntryRow.state == "waiting",
        )
    )


def _fresh_after(ctx: BrokerContext, now: datetime) -> datetime:
    return now - timedelta(seconds=ctx.settings.queue_ttl_seconds)


def _waiting_count(session: Session, ctx: BrokerContext, pool_id: str, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(QueueEntryRow)
            .where(
                QueueEntryRow.pool_id == pool_id,
                QueueEntryRow.state == "waiting",
                QueueEntryRow.last_seen_at >= _fresh_after(ctx, now),
            )
        )
        or 0
    )


def _enqueue(session: Session, pool: PoolRow, actor: Actor, user_id: str, now: datetime) -> None:
    entry = QueueEntryRow(
        pool_id=pool.id, user_id=user_id, state="waiting", created_at=now, last_seen_at=now
    )
    session.add(entry)
    session.flush()
    record_event(
        session,
        tenant_id=pool.tenant_id,
        actor=actor,
        kind="queued",
        now=now,
        reason="pool full: waiting for a desktop",
        pool_id=pool.id,
        data={"user_id": user_id, "seq": entry.seq},
    )


def _end_entry(entry: QueueEntryRow, state: str, now: datetime) -> None:
    entry.state = state
    entry.ended_at = now


def queue_position(
    session: Session, ctx: BrokerContext, entry: QueueEntryRow, now: datetime
) -> int:
    """1-based position of a waiting entry among the fresh ones (FIFO by ``seq``)."""
    ahead = session.scalar(
        select(func.count())
        .select_from(QueueEntryRow)
        .where(
            QueueEntryRow.pool_id == entry.pool_id,
            QueueEntryRow.state == "waiting",
            QueueEntryRow.seq < entry.seq,
            QueueEntryRow.last_seen_at >= _fresh_after(ctx, now),
        )
    )
    return int(ahead or 0) + 1


def expire_stale_entries(session: Session, ctx: BrokerContext, pool_id: str, now: datetime) -> int:
    """Users who stopped asking leave the queue (they went away)."""
    result = session.execute(
        update(QueueEntryRow)
        .where(
            QueueEntryRow.pool_id == pool_id,
            QueueEntryRow.state == "waiting",
            QueueEntryRow.last_seen_at < _fresh_after(ctx, now),
        )
        .values(state="expired", ended_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def serve_queue(session: Session, ctx: BrokerContext, pool: PoolRow, now: datetime) -> list[str]:
    """Give free capacity to waiting users, first come first served (C5).

    Order of preference per waiter: an idle ready desktop, an idle one being created, a new
    one if the pool has room. Returns the desktops handed out.
    """
    pool = lock_pool(session, pool.id)
    expire_stale_entries(session, ctx, pool.id, now)
    served: list[str] = []
    waiters = session.scalars(
        select(QueueEntryRow)
        .where(QueueEntryRow.pool_id == pool.id, QueueEntryRow.state == "waiting")
        .order_by(QueueEntryRow.seq)
    ).all()
    for entry in waiters:
        if held_desktop(session, pool.id, entry.user_id) is not None:
            _end_entry(entry, "cancelled", now)  # holds one already (C2): never blocks the line
            continue
        desktop = _desktop_for_waiter(session, pool, entry, now)
        if desktop is None:
            break
        _end_entry(entry, "served", now)
        entry.desktop_id = desktop.id
        record_event(
            session,
            tenant_id=pool.tenant_id,
            actor="system:queue",
            kind="assigned",
            now=now,
            reason="served from the waiting queue",
            pool_id=pool.id,
            desktop_id=desktop.id,
            data={"user_id": entry.user_id, "seq": entry.seq},
        )
        served.append(desktop.id)
    return served


def _desktop_for_waiter(
    session: Session, pool: PoolRow, entry: QueueEntryRow, now: datetime
) -> DesktopRow | None:
    desktop = _take_idle(session, pool.id, [S.READY.value], entry.user_id, now)
    if desktop is not None:
        move_desktop(
            session, desktop, S.ASSIGNED, actor="system:queue", reason="assigned to waiter", now=now
        )
        return desktop
    desktop = _take_idle(session, pool.id, PROVISIONING, entry.user_id, now)
    if desktop is not None:
        return desktop
    if pool.draining or count_live(session, pool.id) >= pool.max_desktops:
        return None
    return add_desktop_intent(
        session,
        pool,
        user_id=entry.user_id,
        now=now,
        actor="system:queue",
        reason="created for a waiting user",
        datastore=choose_datastore(session, pool),
    )


# --- cards -----------------------------------------------------------------------------


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
    return _card(session, ctx, pool, user_id, now, desktop, outcome=outcome)


def _card(
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
    entry = _waiting_entry(session, pool.id, user_id)
    if entry is not None and entry.last_seen_at >= _fresh_after(ctx, now):
        return Card(
            **base,  # type: ignore[arg-type]
            state=CardState.WAITING,
            position=queue_position(session, ctx, entry, now),
            waiting=_waiting_count(session, ctx, pool.id, now),
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
