"""Provider health as last seen by the reconciler (S1)."""

from __future__ import annotations

from typing import Any

from hotdesk.db.models import ProviderRow
from hotdesk.services.context import BrokerContext


def record_health(
    ctx: BrokerContext, provider_id: str, *, ok: bool, detail: str, facts: dict[str, Any]
) -> None:
    """Store the result of a provider's health check."""
    with ctx.db.write() as session:
        row = session.get(ProviderRow, provider_id)
        if row is None:
            return
        row.health_ok = ok
        row.health_detail = detail
        row.health_facts = facts
        row.checked_at = ctx.now()
