"""Periodic upkeep beside the pool passes: leak sweep (R4), provider health, operations (O1)."""

from __future__ import annotations

import asyncio
import logging
import time

from hotdesk.domain.errors import ProviderError
from hotdesk.providers.base import PowerAction
from hotdesk.reconciler.drivers import DriverCache
from hotdesk.reconciler.publisher import remove_unused_images
from hotdesk.services import health, sweep
from hotdesk.services.context import BrokerContext
from hotdesk.services.operations import OperationJob, finish_operation, take_pending_operations

log = logging.getLogger("hotdesk.reconciler")

POWER = {
    "power-on": PowerAction.ON,
    "power-off": PowerAction.OFF,
    "restart": PowerAction.RESTART,
    "force-restart": PowerAction.FORCE_RESTART,
}


class Upkeep:
    """Runs the sweep and the health checks on their own timers."""

    def __init__(self, ctx: BrokerContext, drivers: DriverCache) -> None:
        self.ctx = ctx
        self.drivers = drivers
        self._next_sweep = 0.0
        self._next_health = 0.0
        self.sweeps = 0

    async def maybe_run(self) -> None:
        """Sweep and check health when their intervals have passed."""
        now = time.monotonic()
        if now >= self._next_health:
            self._next_health = now + self.ctx.settings.health_interval_seconds
            await self.check_health()
        if now >= self._next_sweep:
            self._next_sweep = now + self.ctx.settings.sweep_interval_seconds
            await self.sweep()

    async def sweep(self) -> None:
        """List every provider's tagged VMs; delete leaks seen twice; mark vanished VMs lost."""
        for provider_id in await asyncio.to_thread(self.drivers.provider_ids):
            try:
                await self._sweep_provider(provider_id)
            except ProviderError as exc:
                log.warning("sweep of provider %s skipped: %s", provider_id, exc)
        self.sweeps += 1

    async def _sweep_provider(self, provider_id: str) -> None:
        driver = self.drivers.get(provider_id)
        listed_at = self.ctx.now()
        instances = await driver.list_desktops(owner=self.ctx.broker_id)
        result = await asyncio.to_thread(
            sweep.reconcile_listing, self.ctx, provider_id, instances, listed_at
        )
        for ref in result.leaks_to_delete:
            await driver.delete_desktop(ref)
            await asyncio.to_thread(sweep.record_leak_deleted, self.ctx, provider_id, ref)
        for desktop_id, ref in result.maybe_lost:
            if await driver.get_desktop(ref) is None:
                await asyncio.to_thread(sweep.mark_lost, self.ctx, desktop_id)
        await remove_unused_images(self.ctx, provider_id, driver)

    async def check_health(self) -> None:
        """Ask every provider whether it answers; store the result."""
        for provider_id in await asyncio.to_thread(self.drivers.provider_ids):
            try:
                driver = self.drivers.get(provider_id)
                result = await driver.check()
            except Exception as exc:  # noqa: BLE001 - a broken driver is reported
                await asyncio.to_thread(
                    health.record_health, self.ctx, provider_id, ok=False, detail=str(exc), facts={}
                )
                continue
            await asyncio.to_thread(
                health.record_health,
                self.ctx,
                provider_id,
                ok=result.ok,
                detail=result.detail,
                facts=result.facts,
            )

    async def run_operations(self) -> None:
        """Carry out queued power and log operations."""
        jobs = await asyncio.to_thread(take_pending_operations, self.ctx)
        if jobs:
            await asyncio.gather(*(self._run_operation(job) for job in jobs))

    async def _run_operation(self, job: OperationJob) -> None:
        driver = self.drivers.get(job.provider_id)
        try:
            if job.kind == "console-log":
                result = await driver.console_log(job.ref)
            else:
                await driver.power(job.ref, POWER[job.kind])
                result = "ok"
        except ProviderError as exc:
            await asyncio.to_thread(finish_operation, self.ctx, job, ok=False, result=str(exc))
            return
        await asyncio.to_thread(finish_operation, self.ctx, job, ok=True, result=result)
