"""This process's leases as the reconciler sees them: refreshed by a heartbeat task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from hotdesk.services import leases
from hotdesk.services.context import BrokerContext

log = logging.getLogger("hotdesk.reconciler")


class LeaseKeeper:
    """Heartbeats, renews and rebalances this process's leases; answers "is this mine?"."""

    def __init__(self, ctx: BrokerContext, instance: leases.Instance | None = None) -> None:
        self.ctx = ctx
        self.instance = instance or leases.Instance.of_this_process()
        self.held = leases.HeldLeases()
        self.refreshes = 0

    def token_for(self, pool_id: str) -> str | None:
        """The lease token of a pool this process holds, else ``None``."""
        return self.held.pools.get(pool_id)

    def pool_ids(self) -> list[str]:
        """Pools whose reconciler work is this process's, in a stable order."""
        return sorted(self.held.pools)

    def holds(self, singleton: str) -> bool:
        """Whether this process runs the singleton loop ``singleton`` now."""
        return singleton in self.held.singletons

    async def refresh(self, busy_pools: Iterable[str] = ()) -> leases.HeldLeases:
        """Heartbeat and rebalance now (one short transaction in a worker thread)."""
        held = await asyncio.to_thread(
            leases.refresh_leases, self.ctx, self.instance, busy_pools=list(busy_pools)
        )
        self._log_changes(held)
        self.held = held
        self.refreshes += 1
        return held

    async def keep_alive(self, stop: asyncio.Event, busy: Callable[[], Iterable[str]]) -> None:
        """Refresh every third of the lease period until ``stop`` is set; then give all back."""
        every = self.ctx.settings.lease_seconds / 3
        while not stop.is_set():
            try:
                await self.refresh(busy())
            except Exception:
                log.exception("lease heartbeat failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)

    async def release(self) -> None:
        """Give back every lease (clean shutdown): the other processes take over at once."""
        try:
            await asyncio.to_thread(leases.release_all, self.ctx, self.instance)
        except Exception:
            log.exception("could not give back leases; they expire by themselves")
        self.held = leases.HeldLeases()

    def _log_changes(self, held: leases.HeldLeases) -> None:
        if held.taken or held.released:
            log.info(
                "leases: took %d pool(s), gave back %d; holding %d of fair share %d "
                "(%d live broker process(es))",
                len(held.taken),
                len(held.released),
                len(held.pools),
                held.fair_share,
                held.live_instances,
            )
