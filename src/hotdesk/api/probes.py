"""Readiness probes (S1): does the database answer, how are the providers doing.

Read-only and tenant-neutral; per-provider details go through ``services.catalog``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from hotdesk.db.models import ProviderRow
from hotdesk.services.context import BrokerContext


@dataclass(frozen=True)
class DatabaseProbe:
    """Whether the database answered, and a short reason if not (no connection details)."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class ProvidersProbe:
    """How many providers (every tenant) were last seen healthy, failing, or not yet checked."""

    healthy: int
    failing: int
    unchecked: int


def probe_database(ctx: BrokerContext) -> DatabaseProbe:
    """Run a trivial query; never raises."""
    try:
        with ctx.db.read() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return DatabaseProbe(ok=False, detail=f"database unavailable ({type(exc).__name__})")
    return DatabaseProbe(ok=True, detail="ok")


def probe_providers(ctx: BrokerContext) -> ProvidersProbe:
    """Count providers by their last recorded health."""
    with ctx.db.read() as session:
        rows = session.execute(
            select(ProviderRow.health_ok, func.count()).group_by(ProviderRow.health_ok)
        ).all()
    counts = {ok: int(n) for ok, n in rows}
    return ProvidersProbe(
        healthy=counts.get(True, 0), failing=counts.get(False, 0), unchecked=counts.get(None, 0)
    )
