"""Prometheus metrics for the operator (S1/issue 5: claim latency, queue, desktops...)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from hotdesk.api.deps import Ctx
from hotdesk.services.metrics import render_metrics

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics(ctx: Ctx) -> Response:
    """Prometheus text format. Meant for the operator's scraper: do not expose it publicly."""
    return Response(render_metrics(ctx), media_type=CONTENT_TYPE_LATEST)
