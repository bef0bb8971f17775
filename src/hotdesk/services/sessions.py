"""Sessions and release: a session ends (retention starts, L1) or the desktop goes (L2, L3)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hotdesk.db.models import DesktopRow, SessionRow
from hotdesk.domain.states import DesktopState
from hotdesk.services.context import Actor
from hotdesk.services.events import move_desktop

S = DesktopState


def start_session_if_ready(
    session: Session, desktop: DesktopRow, actor: Actor, now: datetime
) -> None:
    state = DesktopState(desktop.state)
    if state not in (S.READY, S.ASSIGNED, S.DISCONNECTED):
        return
    move_desktop(session, desktop, S.CONNECTED, actor=actor, reason="session started", now=now)
    desktop.assigned_at = desktop.assigned_at or now
    session.add(SessionRow(desktop_id=desktop.id, user_id=desktop.user_id, started_at=now))


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
