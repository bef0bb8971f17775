"""``/healthz`` (the process is up) and ``/readyz`` (the database answers; provider health)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from hotdesk.api.deps import Ctx, optional_actor
from hotdesk.api.probes import probe_database, probe_providers
from hotdesk.api.schemas.health import (
    DatabaseHealthRead,
    HealthRead,
    ProviderHealthRead,
    ProvidersSummaryRead,
    ReadinessRead,
)
from hotdesk.services import catalog, leases
from hotdesk.services.context import Actor

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> HealthRead:
    """The process is up (liveness)."""
    return HealthRead()


@router.get("/readyz", responses={503: {"model": ReadinessRead, "description": "database down"}})
def readyz(
    ctx: Ctx, response: Response, actor: Annotated[Actor | None, Depends(optional_actor)]
) -> ReadinessRead:
    """Readiness: 503 if the database does not answer; provider health is reported.

    Providers are not required: with them down, users still get prepared desktops (S1).
    ``brokers`` counts the broker processes sharing the database (recent heartbeat).
    A tenant administrator's token adds each of the tenant's providers, its last check and
    its circuit breaker.
    """
    database = probe_database(ctx)
    if not database.ok:
        response.status_code = 503
        return ReadinessRead(
            status="unavailable", database=DatabaseHealthRead.model_validate(database)
        )
    summary = probe_providers(ctx)
    details = None
    if actor is not None and actor.is_admin:
        details = [
            ProviderHealthRead(
                name=p.name,
                kind=p.kind,
                ok=p.health_ok,
                detail=p.health_detail,
                checked_at=p.checked_at,
                breaker=(p.health_facts or {}).get("breaker"),
            )
            for p in catalog.list_providers(ctx, actor)
        ]
    return ReadinessRead(
        status="degraded" if summary.failing else "ok",
        database=DatabaseHealthRead.model_validate(database),
        brokers=len(leases.live_instances(ctx)),
        summary=ProvidersSummaryRead.model_validate(summary),
        providers=details,
    )
