"""Pool gauges read from the database at scrape time, and the /metrics exposition.

The database is the source of truth, so every broker process reports the same pool figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from hotdesk.db.models import DesktopRow, PoolRow, QueueEntryRow, TenantRow
from hotdesk.observability.metrics import REGISTRY
from hotdesk.services.context import BrokerContext


class PoolCollector(Collector):
    """Desktops by pool and state, and waiting users by pool, read from the database."""

    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One query per family: desktops grouped by pool and state; waiting users by pool."""
        desktops = GaugeMetricFamily(
            "hotdesk_desktops",
            "Live desktops by pool and state.",
            labels=["tenant", "pool", "state"],
        )
        queue = GaugeMetricFamily(
            "hotdesk_queue_length",
            "Users waiting for a desktop, by pool.",
            labels=["tenant", "pool"],
        )
        fresh = self.ctx.now() - timedelta(seconds=self.ctx.settings.queue_ttl_seconds)
        with self.ctx.db.read() as session:
            pools = session.execute(
                select(PoolRow.id, TenantRow.name, PoolRow.name)
                .join(TenantRow, TenantRow.id == PoolRow.tenant_id)
                .where(PoolRow.deleted_at.is_(None))
            ).all()
            names = {pool_id: (tenant, pool) for pool_id, tenant, pool in pools}
            for pool_id, state, count in session.execute(
                select(DesktopRow.pool_id, DesktopRow.state, func.count())
                .where(DesktopRow.state != "deleted", DesktopRow.pool_id.in_(names))
                .group_by(DesktopRow.pool_id, DesktopRow.state)
            ):
                desktops.add_metric([*names[pool_id], state], count)
            waiting = dict(
                session.execute(
                    select(QueueEntryRow.pool_id, func.count())
                    .where(QueueEntryRow.state == "waiting", QueueEntryRow.last_seen_at >= fresh)
                    .group_by(QueueEntryRow.pool_id)
                ).all()
            )
        for pool_id, (tenant, pool) in names.items():
            queue.add_metric([tenant, pool], waiting.get(pool_id, 0))
        yield desktops
        yield queue


def render_metrics(ctx: BrokerContext) -> bytes:
    """The Prometheus text exposition of this process's metrics and the pool gauges."""
    pools = CollectorRegistry()
    pools.register(PoolCollector(ctx))
    return generate_latest(REGISTRY) + generate_latest(pools)
