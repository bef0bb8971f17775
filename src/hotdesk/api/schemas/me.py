"""The user's portal: one card per entitled pool (seed 000 §3.2)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from hotdesk.api.schemas.common import ReadSchema
from hotdesk.domain.durations import format_duration
from hotdesk.services.cards import Card


class CardDesktopRead(ReadSchema):
    """The desktop a card holds."""

    id: str
    name: str | None
    state: str | None


class CardRead(ReadSchema):
    """A pool card: unassigned, preparing, ready, connected, disconnected or waiting."""

    pool_name: str
    state: str
    desktop: CardDesktopRead | None
    position: int | None
    waiting: int | None
    deadline: datetime | None
    seconds_left: int | None
    retention: str
    retention_seconds: float
    progress: dict[str, Any] | None
    outcome: str | None

    @classmethod
    def of(cls, card: Card, now: datetime) -> CardRead:
        """Build from a service card; ``seconds_left`` counts down to the deadline (L4)."""
        desktop = None
        if card.desktop_id is not None:
            desktop = CardDesktopRead(
                id=card.desktop_id, name=card.desktop_name, state=card.desktop_state
            )
        seconds_left = None
        if card.deadline is not None:
            seconds_left = max(0, int((card.deadline - now).total_seconds()))
        return cls(
            pool_name=card.pool_name,
            state=card.state.value,
            desktop=desktop,
            position=card.position,
            waiting=card.waiting,
            deadline=card.deadline,
            seconds_left=seconds_left,
            retention=format_duration(timedelta(seconds=card.retention_seconds)),
            retention_seconds=card.retention_seconds,
            progress=card.progress,
            outcome=card.outcome,
        )
