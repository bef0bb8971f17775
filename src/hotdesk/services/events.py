"""The one place desktop states change (rule 5) and where events are written (O2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hotdesk.db.models import DesktopRow, EventRow
from hotdesk.domain.states import HELD_STATES, DesktopState, transition
from hotdesk.services.context import Actor


def record_event(
    session: Session,
    *,
    tenant_id: str,
    actor: Actor | str,
    kind: str,
    now: datetime,
    reason: str = "",
    pool_id: str | None = None,
    desktop_id: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append one event row (who, when, why)."""
    session.add(
        EventRow(
            tenant_id=tenant_id,
            pool_id=pool_id,
            desktop_id=desktop_id,
            at=now,
            actor=actor if isinstance(actor, str) else actor.label,
            kind=kind,
            from_state=from_state,
            to_state=to_state,
            reason=reason,
            data=data,
        )
    )


def move_desktop(
    session: Session,
    desktop: DesktopRow,
    target: DesktopState,
    *,
    actor: Actor | str,
    reason: str,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> None:
    """Change a desktop's state through the transition guard and record the event.

    Leaving the held states (to deleting, lost, failed) clears the assignment.
    """
    current = DesktopState(desktop.state)
    transition(current, target)
    desktop.state = target.value
    desktop.state_since = now
    desktop.version += 1
    if target in (DesktopState.DELETING, DesktopState.LOST, DesktopState.FAILED):
        if desktop.user_id is not None:
            desktop.previous_user_id = desktop.user_id
        desktop.user_id = None
        desktop.idle_since = None
    if target in (DesktopState.ASSIGNED, DesktopState.DISCONNECTED):
        desktop.idle_since = now
    elif target in HELD_STATES or target is DesktopState.READY:
        desktop.idle_since = None
    record_event(
        session,
        tenant_id=desktop.tenant_id,
        actor=actor,
        kind="state",
        now=now,
        reason=reason,
        pool_id=desktop.pool_id,
        desktop_id=desktop.id,
        from_state=current.value,
        to_state=target.value,
        data=data,
    )


def lock_desktop(session: Session, desktop_id: str) -> DesktopRow | None:
    """Load a desktop for update (row lock on PostgreSQL; SQLite is already serialised).

    Re-read under the lock (``populate_existing``), so a copy loaded earlier in the session
    never hides a change another transaction committed meanwhile.
    """
    return session.scalar(
        select(DesktopRow)
        .where(DesktopRow.id == desktop_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
