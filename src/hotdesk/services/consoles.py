"""Console access (O1 "console", C8 ``accessConsole``): single-use tickets, sessions, files.

A ticket is issued to a signed-in user for one desktop, lives ``TICKET_TTL_SECONDS`` and can be
redeemed once (only its SHA-256 is stored, in the database, so any broker process sharing it
can redeem it). Redeeming returns the VNC endpoint the reconciler recorded in
``DesktopRow.console``: the API never asks a driver. When the desktop's own user opens the
console, a session starts (desktop ``connected``); when the console closes, it ends and the
retention clock starts (L1).

Who may open a console:

* tenant administrators: any desktop of their tenant that has a console;
* users: only the desktop assigned to them, and only if the pool's permissions grant them
  ``accessConsole`` -- a pool *without any* permission rules lets its users open their own
  desktop's console (otherwise nobody could use it); a pool with rules needs ``accessConsole``
  for the user or their role.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from hotdesk.db.models import ConsoleTicketRow, DesktopRow, PoolRow, SessionRow, UserRow
from hotdesk.domain.errors import Conflict, Forbidden, NotFound
from hotdesk.domain.pools import PermissionRule, allowed_actions
from hotdesk.domain.states import DesktopState
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.events import move_desktop
from hotdesk.services.operations import get_desktop_for
from hotdesk.services.sessions import end_session

S = DesktopState
TICKET_TTL_SECONDS = 30.0
CONSOLE_STATES = frozenset(
    {S.READY.value, S.ASSIGNED.value, S.CONNECTED.value, S.DISCONNECTED.value, S.BOOTING.value}
)
USER_STATES = frozenset({S.ASSIGNED.value, S.CONNECTED.value, S.DISCONNECTED.value})


class TicketRefused(Exception):
    """The ticket is unknown, already used, expired, or no longer grants access."""


@dataclass(frozen=True)
class IssuedTicket:
    """A fresh ticket (shown once) and how long it stays valid."""

    ticket: str
    desktop_id: str
    expires_in: int
    protocol: str


@dataclass(frozen=True)
class ConsoleGrant:
    """What a redeemed ticket opens: the endpoint, and whether it is the user's session."""

    desktop_id: str
    tenant_id: str
    user_id: str
    username: str
    protocol: str
    host: str
    port: int
    user_session: bool


def issue_ticket(
    ctx: BrokerContext, actor: Actor, desktop_id: str, *, ttl: float = TICKET_TTL_SECONDS
) -> IssuedTicket:
    """Issue a single-use console ticket for a desktop the actor may open (403/404/409)."""
    if actor.user_id is None:
        raise Forbidden("only signed-in users open consoles")
    ticket = "hdc_" + secrets.token_urlsafe(32)
    with ctx.db.write() as session:
        now = ctx.now()
        desktop = get_desktop_for(session, actor, desktop_id)
        _check_may_open(session, actor, desktop)
        endpoint = _endpoint(desktop)
        session.execute(delete(ConsoleTicketRow).where(ConsoleTicketRow.expires_at < now))
        session.add(
            ConsoleTicketRow(
                token_hash=_digest(ticket),
                tenant_id=desktop.tenant_id,
                desktop_id=desktop.id,
                user_id=actor.user_id,
                as_admin=actor.is_admin,
                created_at=now,
                expires_at=now + timedelta(seconds=ttl),
            )
        )
    return IssuedTicket(ticket, desktop_id, max(1, int(ttl)), str(endpoint["protocol"]))


def open_console(ctx: BrokerContext, ticket: str) -> ConsoleGrant:
    """Redeem a ticket (once); start the user's session if it is their own desktop."""
    with ctx.db.write() as session:
        now = ctx.now()
        row = session.scalars(
            update(ConsoleTicketRow)
            .where(
                ConsoleTicketRow.token_hash == _digest(ticket),
                ConsoleTicketRow.used_at.is_(None),
                ConsoleTicketRow.expires_at > now,
            )
            .values(used_at=now)
            .returning(ConsoleTicketRow)
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if row is None:
            raise TicketRefused("the console ticket is unknown, used or expired")
        return _grant(session, row, now)


def _grant(session: Session, row: ConsoleTicketRow, now: datetime) -> ConsoleGrant:
    desktop = session.get(DesktopRow, row.desktop_id)
    user = session.get(UserRow, row.user_id)
    if desktop is None or user is None or user.disabled:
        raise TicketRefused("the desktop or the user is gone")
    own = desktop.user_id == user.id and not row.as_admin
    if not row.as_admin and not own:
        raise TicketRefused("the desktop is no longer assigned to you")
    try:
        endpoint = _endpoint(desktop)
    except Conflict as exc:
        raise TicketRefused(str(exc)) from exc
    if endpoint.get("protocol") != "vnc" or not endpoint.get("port"):
        raise TicketRefused(f"no VNC console for {desktop.name!r}")
    if own:
        start_session(session, desktop, username=user.username, now=now)
    return ConsoleGrant(
        desktop_id=desktop.id,
        tenant_id=desktop.tenant_id,
        user_id=user.id,
        username=user.username,
        protocol="vnc",
        host=str(endpoint.get("host") or "127.0.0.1"),
        port=int(endpoint["port"]),
        user_session=own,
    )


def start_session(session: Session, desktop: DesktopRow, *, username: str, now: datetime) -> None:
    """Mark the desktop connected (a session starts) unless it already is."""
    if desktop.state not in (S.READY.value, S.ASSIGNED.value, S.DISCONNECTED.value):
        return
    move_desktop(session, desktop, S.CONNECTED, actor=username, reason="console opened", now=now)
    desktop.assigned_at = desktop.assigned_at or now
    assert desktop.user_id is not None
    session.add(
        SessionRow(desktop_id=desktop.id, user_id=desktop.user_id, started_at=now, client="web")
    )


def close_console(ctx: BrokerContext, grant: ConsoleGrant) -> bool:
    """The console closed: end the user's session (retention starts). True if it ended one."""
    if not grant.user_session:
        return False
    with ctx.db.write() as session:
        desktop = session.get(DesktopRow, grant.desktop_id)
        if desktop is None or desktop.user_id != grant.user_id:
            return False
        if desktop.state != S.CONNECTED.value:
            return False
        end_session(session, desktop, actor=grant.username, now=ctx.now(), reason="console closed")
        pool_id = desktop.pool_id
    ctx.wakeups.notify(pool_id)
    return True


def still_allowed(ctx: BrokerContext, grant: ConsoleGrant) -> bool:
    """Whether an open console may stay open (the user still holds a live session)."""
    with ctx.db.read() as session:
        desktop = session.get(DesktopRow, grant.desktop_id)
        if desktop is None or desktop.state not in CONSOLE_STATES:
            return False
        if not grant.user_session:
            return True
        return desktop.user_id == grant.user_id and desktop.state == S.CONNECTED.value


def native_file(ctx: BrokerContext, actor: Actor, desktop_id: str) -> tuple[str, str, str]:
    """A native client file ``(filename, media type, content)``: SPICE ``.vv`` or RDP ``.rdp``.

    Platforms offering only VNC (libvirt here) answer 409: use the console in the browser.
    """
    with ctx.db.read() as session:
        desktop = get_desktop_for(session, actor, desktop_id)
        _check_may_open(session, actor, desktop)
        endpoint = _endpoint(desktop)
    protocol = endpoint.get("protocol")
    host, port = endpoint.get("host") or "127.0.0.1", endpoint.get("port")
    title = desktop.display_name
    if protocol == "spice" and port:
        lines = ["[virt-viewer]", "type=spice", f"host={host}", f"port={port}", f"title={title}"]
        if endpoint.get("password"):
            lines.append(f"password={endpoint['password']}")
        lines.append("delete-this-file=1")
        return f"{desktop.name}.vv", "application/x-virt-viewer", "\n".join(lines) + "\n"
    if protocol == "rdp" and port:
        text = f"full address:s:{host}:{port}\r\nprompt for credentials:i:1\r\n"
        return f"{desktop.name}.rdp", "application/x-rdp", text
    raise Conflict(
        f"the platform of {desktop.name!r} offers a {protocol} console only: open it in the browser"
    )


def _check_may_open(session: Session, actor: Actor, desktop: DesktopRow) -> None:
    if actor.is_admin:
        return
    if desktop.user_id != actor.user_id or desktop.state not in USER_STATES | {S.READY.value}:
        raise NotFound("desktop", desktop.id)
    pool = session.get(PoolRow, desktop.pool_id)
    raw = (pool.spec.get("permissions") or []) if pool else []
    if not raw:
        return  # no rules configured: users open their own desktop's console
    rules = [
        PermissionRule(may=tuple(r.get("may", ())), user=r.get("user"), role=r.get("role"))
        for r in raw
    ]
    if "accessConsole" not in allowed_actions(rules, username=actor.username, role=actor.role):
        raise Forbidden("the pool's permissions do not allow you to open the console")


def _endpoint(desktop: DesktopRow) -> dict[str, Any]:
    if desktop.state not in CONSOLE_STATES:
        raise Conflict(f"desktop {desktop.name!r} is {desktop.state}: no console yet")
    if not desktop.console:
        raise Conflict(f"desktop {desktop.name!r} has no console (the platform offers none)")
    return dict(desktop.console)


def _digest(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()
