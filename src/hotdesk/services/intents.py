"""Recording the intent to create a desktop, before any platform call (rule 1)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hotdesk.db.models import DesktopRow, PoolRow
from hotdesk.domain.pools import least_loaded_datastore, render_name
from hotdesk.domain.states import DesktopState
from hotdesk.services.context import Actor
from hotdesk.services.events import record_event
from hotdesk.services.lookup import LIVE, current_revision_id, desktop_view, live_desktops


def count_live(session: Session, pool_id: str) -> int:
    """How many desktops occupy a slot of the pool's ``max``."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(DesktopRow)
            .where(DesktopRow.pool_id == pool_id, DesktopRow.state.in_(LIVE))
        )
        or 0
    )


def add_desktop_intent(
    session: Session,
    pool: PoolRow,
    *,
    user_id: str | None,
    now: datetime,
    actor: Actor | str,
    reason: str,
    datastore: str | None = None,
) -> DesktopRow:
    """Insert a desktop in state ``creating`` with its deterministic name and revision.

    The caller holds the pool's row lock and has checked ``max``.
    """
    sequence = pool.next_sequence
    pool.next_sequence = sequence + 1
    spec = pool.spec
    name = render_name(spec["name_pattern"], sequence)
    display_pattern = spec.get("display_name_pattern")
    desktop = DesktopRow(
        tenant_id=pool.tenant_id,
        pool_id=pool.id,
        provider_id=pool.provider_id,
        name=name,
        display_name=render_name(display_pattern, sequence) if display_pattern else name,
        sequence=sequence,
        state=DesktopState.CREATING.value,
        user_id=user_id,
        template_revision_id=current_revision_id(session, pool),
        datastore=datastore,
        created_at=now,
        state_since=now,
        assigned_at=now if user_id else None,
        attempts=0,
        version=1,
    )
    session.add(desktop)
    session.flush()
    record_event(
        session,
        tenant_id=pool.tenant_id,
        actor=actor,
        kind="state",
        now=now,
        reason=reason,
        pool_id=pool.id,
        desktop_id=desktop.id,
        from_state=None,
        to_state=DesktopState.CREATING.value,
        data={"name": name, "user_id": user_id} if user_id else {"name": name},
    )
    return desktop


def choose_datastore(session: Session, pool: PoolRow) -> str | None:
    """T4: the least-loaded of the pool's datastores, or ``None`` if it names none."""
    stores: list[str] = list(pool.spec.get("datastores") or [])
    if not stores:
        return None
    return least_loaded_datastore(
        stores, [desktop_view(d) for d in live_desktops(session, pool.id)]
    )
