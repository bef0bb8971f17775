"""G1/G2: endpoints the guest agent inside each desktop calls (docs/guest-agent.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from hotdesk.api.deps import Ctx
from hotdesk.services import agent

router = APIRouter(prefix="/agent", tags=["guest agent"])


class AgentReportCreate(BaseModel):
    """A report from a desktop's guest agent, authenticated by the desktop's credential."""

    desktop: str = Field(min_length=1, max_length=64, description="the desktop id")
    token: str = Field(min_length=1, max_length=128, description="the desktop's credential")
    username: str | None = Field(default=None, max_length=100)
    version: str | None = Field(default=None, max_length=50)


class AgentReplyRead(BaseModel):
    """The broker's answer: the desktop's state and, for auto-login (G2), who to log in."""

    desktop: str
    state: str
    login: str | None


@router.post("/{event}", response_model=AgentReplyRead)
def agent_report(event: str, body: AgentReportCreate, ctx: Ctx) -> AgentReplyRead:
    """Report ready, login, logout or heartbeat; the answer carries instructions."""
    data: dict[str, Any] = {
        k: v for k, v in (("username", body.username), ("version", body.version)) if v is not None
    }
    reply = agent.report(
        ctx,
        agent.context_secret(ctx),
        desktop_id=body.desktop,
        token=body.token,
        event=event,
        data=data,
    )
    return AgentReplyRead(desktop=reply.desktop_id, state=reply.state, login=reply.login)
