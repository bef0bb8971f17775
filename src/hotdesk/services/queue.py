"""C5: the waiting queue of a full pool, served first come, first served; and the atomic take
of an idle desktop that claims and the queue share."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hotdesk.db.models import DesktopRow, PoolRow, QueueEntryRow
from hotdesk.domain.states import PROVISIONING_STATES, DesktopState
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.events import move_desktop, record_event
from hotdesk.services.intents import add_desktop_intent, choose_datastore, count_live
from hotdesk.services.lookup import held_desktop, lock_pool

S = DesktopState
PROVISIONING = [s.value for s in PROVISIONING_STATES]


def take_idle(
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


def waiting_entry(session: Session, pool_id: str, user_id: str) -> QueueEntryRow | None:
    return session.scalar(
        select(QueueEntryRow).where(
            QueueEntryRow.pool_id == pool_id,
            QueueEntryRow.user_id == user_id,
            QueueEntryRow.state == "waiting",
        )
    )


def fresh_after(ctx: BrokerContext, now: datetime) -> datetime:
    return now - timedelta(seconds=ctx.settings.queue_ttl_seconds)


def waiting_count(session: Session, ctx: BrokerContext, pool_id: str, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(QueueEntryRow)
            .where(
                QueueEntryRow.pool_id == pool_id,
                QueueEntryRow.state == "waiting",
                QueueEntryRow.last_seen_at >= fresh_after(ctx, now),
            )
        )
        or 0
    )


def enqueue(session: Session, pool: PoolRow, actor: Actor, user_id: str, now: datetime) -> None:
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


def end_entry(entry: QueueEntryRow, state: str, now: datetime) -> None:
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
            QueueEntryRow.last_seen_at >= fresh_after(ctx, now),
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
            QueueEntryRow.last_seen_at < fresh_after(ctx, now),
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
            end_entry(entry, "cancelled", now)  # holds one already (C2): never blocks the line
            continue
        desktop = _desktop_for_waiter(session, pool, entry, now)
        if desktop is None:
            break
        end_entry(entry, "served", now)
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
    desktop = take_idle(session, pool.id, [S.READY.value], entry.user_id, now)
    if desktop is not None:
        move_desktop(
            session, desktop, S.ASSIGNED, actor="system:queue", reason="assigned to waiter", now=now
        )
        return desktop
    desktop = take_idle(session, pool.id, PROVISIONING, entry.user_id, now)
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
