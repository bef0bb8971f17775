"""G1/G2: the guest agent protocol's broker side (see docs/guest-agent.md).

Each desktop's credential is an HMAC of its id under an installation secret, so it can be
recomputed whenever the reconciler (re)issues a create, and nothing secret is stored per desktop.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from hotdesk.db.engine import Database
from hotdesk.db.models import DesktopRow, MetaRow, PoolRow, SessionRow, UserRow
from hotdesk.domain.errors import ValidationFailed
from hotdesk.domain.states import DesktopState
from hotdesk.services.auth import AuthenticationFailed
from hotdesk.services.context import BrokerContext
from hotdesk.services.events import record_event
from hotdesk.services.sessions import end_session

S = DesktopState
AGENT_EVENTS = ("ready", "login", "logout", "heartbeat")


def ensure_agent_secret(db: Database) -> bytes:
    """The installation's agent secret, created once."""
    with db.write() as session:
        row = session.get(MetaRow, "agent_secret")
        if row is None:
            row = MetaRow(key="agent_secret", value=secrets.token_hex(32))
            session.add(row)
        return bytes.fromhex(row.value)


def context_secret(ctx: BrokerContext) -> bytes:
    """The agent secret of this broker (loaded once from the database)."""
    if ctx.agent_secret is None:
        ctx.agent_secret = ensure_agent_secret(ctx.db)
    return ctx.agent_secret


def agent_token(secret: bytes, desktop_id: str) -> str:
    """The credential of one desktop's agent."""
    return hmac.new(secret, desktop_id.encode(), hashlib.sha256).hexdigest()


def verify_agent(secret: bytes, desktop_id: str, token: str) -> bool:
    """Tell whether ``token`` is the credential of ``desktop_id`` (constant time)."""
    return hmac.compare_digest(agent_token(secret, desktop_id), token)


@dataclass(frozen=True)
class AgentReply:
    """What the broker answers an agent: instructions such as auto-login (G2)."""

    desktop_id: str
    state: str
    login: str | None = None  # user name to log in automatically, when asked


def report(
    ctx: BrokerContext,
    secret: bytes,
    *,
    desktop_id: str,
    token: str,
    event: str,
    data: dict[str, Any] | None = None,
) -> AgentReply:
    """Record an agent report (ready, login, logout, heartbeat) and answer with instructions."""
    if not verify_agent(secret, desktop_id, token):
        raise AuthenticationFailed("bad desktop credential")
    if event not in AGENT_EVENTS:
        raise ValidationFailed(
            "event", f"unknown agent event {event!r} (known: {', '.join(AGENT_EVENTS)})"
        )
    data = data or {}
    with ctx.db.write() as session:
        now = ctx.now()
        desktop = session.get(DesktopRow, desktop_id)
        if desktop is None or desktop.state == S.DELETED.value:
            raise AuthenticationFailed("this desktop no longer exists")
        desktop.agent_seen_at = now
        if event == "ready":
            desktop.agent_ready = True
        elif event in ("login", "logout"):
            _guest_login(session, desktop, event, data, now)
        if event != "heartbeat":
            record_event(
                session,
                tenant_id=desktop.tenant_id,
                actor=f"agent:{desktop.name}",
                kind=f"agent-{event}",
                now=now,
                pool_id=desktop.pool_id,
                desktop_id=desktop.id,
                reason=f"guest agent reports {event}",
                data={k: str(v)[:200] for k, v in data.items()} or None,
            )
        reply = AgentReply(desktop.id, desktop.state, _login_instruction(session, desktop))
        pool_id = desktop.pool_id
    if event == "ready":
        ctx.wakeups.notify(pool_id)
    return reply


def _guest_login(
    session: Any, desktop: DesktopRow, event: str, data: dict[str, Any], now: Any
) -> None:
    username = str(data.get("username", ""))[:100] or None
    desktop.guest_user = username if event == "login" else None
    if event == "logout" and desktop.state == S.CONNECTED.value:
        end_session(
            session,
            desktop,
            actor=f"agent:{desktop.name}",
            now=now,
            reason="the user logged out of the desktop",
        )


def _login_instruction(session: Any, desktop: DesktopRow) -> str | None:
    if desktop.user_id is None or desktop.guest_user is not None:
        return None
    pool = session.get(PoolRow, desktop.pool_id)
    if pool is None or not pool.spec.get("login_on_assignment"):
        return None
    user = session.get(UserRow, desktop.user_id)
    return user.username if user is not None else None


def open_session_count(ctx: BrokerContext, desktop_id: str) -> int:
    """How many sessions of a desktop are open (tests and diagnostics)."""
    with ctx.db.read() as session:
        rows = session.scalars(
            select(SessionRow).where(
                SessionRow.desktop_id == desktop_id, SessionRow.ended_at.is_(None)
            )
        )
        return len(list(rows))
