"""Liveness and readiness."""

from __future__ import annotations

from datetime import datetime

from hotdesk.api.schemas.common import ReadSchema


class HealthRead(ReadSchema):
    """The process is up."""

    status: str = "ok"


class DatabaseHealthRead(ReadSchema):
    """Whether the database answers."""

    ok: bool
    detail: str


class ProviderHealthRead(ReadSchema):
    """A provider's last health check by the reconciler (``ok: null``: not checked yet)."""

    name: str
    kind: str
    ok: bool | None
    detail: str | None
    checked_at: datetime | None
    breaker: str | None = None  # circuit breaker of the checking broker: closed | open


class ProvidersSummaryRead(ReadSchema):
    """How many providers (of every tenant) are healthy, failing or not checked yet."""

    healthy: int
    failing: int
    unchecked: int


class ReadinessRead(ReadSchema):
    """Readiness: the database must answer; providers are reported, not required (S1).

    ``providers`` (each provider's health) is filled for a tenant administrator's token.
    """

    status: str
    database: DatabaseHealthRead
    brokers: int | None = None  # broker processes with a recent heartbeat
    summary: ProvidersSummaryRead | None = None
    providers: list[ProviderHealthRead] | None = None
