"""The reconciler: each pass re-observes and moves every pool toward its desired state.

Level-triggered and idempotent (rules 1-3): a pass loads work in a short transaction, makes
platform calls outside any transaction, and applies each result in its own short transaction.
Events (claims, saves, destroys) only wake a pass early; the timer covers everything else.

Several broker processes share the work by leases (``LeaseKeeper``): each reconciles only the
pools it holds, and only the holder of the ``upkeep`` lease sweeps and checks health. A
provider whose circuit breaker is open gets no calls; its pools wait, and creation resumes
with the usual backoff when a trial health check closes the breaker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from hotdesk.domain.errors import ProviderError, TemporaryError
from hotdesk.observability.metrics import RECONCILE_PASS_SECONDS
from hotdesk.providers.base import InstanceRef
from hotdesk.providers.breaker import CircuitOpen
from hotdesk.reconciler.drivers import DriverCache
from hotdesk.reconciler.leasing import LeaseKeeper
from hotdesk.reconciler.publisher import Publisher
from hotdesk.reconciler.relay import make_relay
from hotdesk.reconciler.upkeep import Upkeep
from hotdesk.services import reconcile as rs
from hotdesk.services import triage
from hotdesk.services.context import BrokerContext
from hotdesk.services.leases import UPKEEP, Instance

log = logging.getLogger("hotdesk.reconciler")


class Reconciler:
    """Keeps every pool at its warm size within max, and carries out queued operations."""

    def __init__(
        self,
        ctx: BrokerContext,
        drivers: DriverCache | None = None,
        *,
        instance: Instance | None = None,
    ) -> None:
        self.ctx = ctx
        self.drivers = drivers or DriverCache(
            ctx, timeout=ctx.settings.provider_call_timeout_seconds
        )
        self.upkeep = Upkeep(ctx, self.drivers)
        self.publisher = Publisher(ctx)
        self.leases = LeaseKeeper(ctx, instance)
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._inflight_pools: dict[str, str] = {}  # desktop id -> pool id
        self._planned_at: dict[str, float] = {}  # pool id -> when last planned (monotonic)
        self._deferred: dict[str, float] = {}  # woken pool id -> when its gap is over
        self._creating: dict[str, int] = {}  # create calls in flight, by provider
        self._wake: asyncio.Event | None = None
        self.passes = 0
        self.last_pass_seconds = 0.0
        self.last_pass_planned = 0  # pools planned in full by the last pass

    # --- running ------------------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Run passes on the timer and on wake-ups until ``stop`` is set."""
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        wake = self._wake

        def on_wakeup() -> None:
            loop.call_soon_threadsafe(wake.set)

        self.ctx.wakeups.subscribe(on_wakeup)
        await self.leases.refresh()
        relay = make_relay(
            self.ctx, self.leases.instance.id, peers=lambda: self.leases.held.live_instances > 1
        )
        await asyncio.to_thread(relay.start)
        heartbeat = asyncio.create_task(self.leases.keep_alive(stop, self._busy_pools))
        next_full = 0.0
        while not stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_full:
                    next_full = now + self.ctx.settings.interval_seconds
                    self.ctx.wakeups.take()
                    self._deferred.clear()
                    await self.run_pass()
                    if self.leases.holds(UPKEEP):
                        await self.upkeep.maybe_run()
                else:
                    await self._reconcile_woken()
            except Exception:
                log.exception("reconcile pass failed; retrying on the next tick")
            wake.clear()
            if self.ctx.wakeups_pending():
                continue
            until = min([next_full, *self._deferred.values()])
            await _wait(stop, wake, max(0.0, until - time.monotonic()))
        await self.settle()
        await heartbeat
        await asyncio.to_thread(relay.stop)
        await self.leases.release()

    async def _reconcile_woken(self) -> None:
        """Plan the pools woken up. A pool planned less than ``wakeup_min_gap_seconds`` ago
        waits for the rest of the gap, so a storm of claims costs a few plans, not one each."""
        gap = self.ctx.settings.wakeup_min_gap_seconds
        for pool_id in self.ctx.wakeups.take():
            self._deferred.setdefault(pool_id, self._planned_at.get(pool_id, -gap) + gap)
        now = time.monotonic()
        for pool_id in [p for p, due in self._deferred.items() if due <= now]:
            del self._deferred[pool_id]
            await self.reconcile_pool(pool_id)

    async def run_pass(self) -> None:
        """One pass over the pools this process holds a lease on, then queued operations.

        Steady pools are skipped after one grouped read (``triage``); the others are
        planned in full, each in its own transaction.
        """
        started = time.perf_counter()
        await self.leases.refresh(self._busy_pools())
        held = self.leases.pool_ids()
        due = await asyncio.to_thread(triage.pools_needing_a_pass, self.ctx, held)
        self.last_pass_planned = len(due)
        for pool_id in due:
            try:
                await self.reconcile_pool(pool_id)
            except Exception:
                log.exception("reconciling pool %s failed", pool_id)
        await self.upkeep.run_operations()
        self.passes += 1
        self.last_pass_seconds = time.perf_counter() - started
        RECONCILE_PASS_SECONDS.observe(self.last_pass_seconds)

    async def settle(self, timeout: float = 30.0) -> None:
        """Wait until no platform call started by this reconciler is still running."""
        deadline = time.monotonic() + timeout
        while self._inflight and time.monotonic() < deadline:
            await asyncio.wait(list(self._inflight.values()), timeout=deadline - time.monotonic())

    async def converge(self, *, passes: int = 20) -> None:
        """Run passes until nothing is in flight and the plan asks for nothing (tests, tools)."""
        for _ in range(passes):
            await self.run_pass()
            await self.settle()
            if not self._inflight and not self.ctx.wakeups_pending():
                await self.run_pass()
                await self.settle()
                if not self.ctx.wakeups_pending():
                    return
            self.ctx.wakeups.take()

    # --- one pool -----------------------------------------------------------------------

    async def reconcile_pool(self, pool_id: str) -> None:
        """Plan the pool and start the platform calls it needs (each in its own task).

        Only a pool this process holds the lease of; with the provider's breaker open the
        plan is still recorded (expiry, queue) but no platform call is started.
        """
        lease = self.leases.token_for(pool_id)
        if lease is None:
            return  # another broker process reconciles it
        self._planned_at[pool_id] = time.monotonic()
        work = await asyncio.to_thread(rs.plan_pool_pass, self.ctx, pool_id, lease=lease)
        if not work.provider_id or not await self._provider_available(work.provider_id):
            return
        for job in self._creates_to_start(work):
            self._creating[job.provider_id] = self._creating.get(job.provider_id, 0) + 1
            self._spawn(job.desktop_id, job.pool_id, self._create(job))
        for boot in work.boots:
            self._spawn(boot.desktop_id, boot.pool_id, self._watch_boot(boot))
        for gone in work.deletes:
            self._spawn(gone.desktop_id, gone.pool_id, self._delete(gone))

    def _creates_to_start(self, work: rs.PoolWork) -> list[rs.CreateJob]:
        """Creates allowed now by the pool's and the provider's concurrency limits.

        Desktops someone is waiting for (created on demand) go first.
        """
        pending = [j for j in work.creates if j.desktop_id not in self._inflight]
        running = len(work.creates) - len(pending)
        pool_slots = work.concurrency - len(work.boots) - running
        provider_slots = (
            work.provider_limit - work.provider_booting - self._creating.get(work.provider_id, 0)
        )
        pending.sort(key=lambda j: (not j.for_user, j.request.name))
        return pending[: max(0, min(pool_slots, provider_slots))]

    async def _provider_available(self, provider_id: str) -> bool:
        """Whether the provider's breaker lets calls through (a due trial is made here)."""
        return await self.drivers.get(provider_id).available()

    def _busy_pools(self) -> set[str]:
        return set(self._inflight_pools.values())

    def _spawn(self, desktop_id: str, pool_id: str, coro: Coroutine[Any, Any, None]) -> None:
        if desktop_id in self._inflight:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(_logged(coro, desktop_id))
        self._inflight[desktop_id] = task
        self._inflight_pools[desktop_id] = pool_id
        task.add_done_callback(self._forget_task(desktop_id))

    def _forget_task(self, desktop_id: str) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self._inflight.pop(desktop_id, None)
            self._inflight_pools.pop(desktop_id, None)

        return forget

    async def _create(self, job: rs.CreateJob) -> None:
        try:
            driver = self.drivers.get(job.provider_id)
            try:
                request = job.request
                if driver.supports_publish:
                    base = await self.publisher.ensure_published(driver, job)
                    request = dataclasses.replace(request, image_ref=base)
                instance = await driver.create_desktop(request)
            except ProviderError as exc:
                if not driver.breaker.allows_calls():
                    # the platform is down (or this failure tripped the breaker): not the
                    # desktop's fault, so no attempt is counted; retried when it is back
                    return
                await asyncio.to_thread(rs.record_create_failure, self.ctx, job, exc)
                return
            await asyncio.to_thread(rs.record_created, self.ctx, job, instance)
        finally:
            self._creating[job.provider_id] -= 1
        ref = instance.ref
        boot = rs.BootJob(
            job.desktop_id,
            job.pool_id,
            job.provider_id,
            ref,
            job.request.template.has_agent,
            job.lease,
        )
        await self._watch_boot(boot)

    async def _watch_boot(self, job: rs.BootJob) -> None:
        """Poll a booting VM until it is ready or vanished (every 0.1 s at first, then less
        often); the database is written only then, or when the watch gives up after 30 s
        (the boot timeout is checked there; the next pass watches again)."""
        driver = self.drivers.get(job.provider_id)
        delay = 0.1
        started = time.monotonic()
        while True:
            try:
                instance = await driver.get_desktop(job.ref)
                console = None
                if instance is not None and instance.ready:
                    console = await _console_or_none(driver, instance.ref)
            except TemporaryError:
                return
            done = instance is None or instance.ready or time.monotonic() - started > 30.0
            if done:
                await asyncio.to_thread(rs.record_boot_status, self.ctx, job, instance, console)
                return
            await asyncio.sleep(delay)
            if time.monotonic() - started > 5.0:
                delay = min(delay * 1.5, 2.0)

    async def _delete(self, job: rs.DeleteJob) -> None:
        driver = self.drivers.get(job.provider_id)
        try:
            progress = await driver.delete_desktop(job.ref)
        except CircuitOpen:
            return
        except ProviderError as exc:
            await asyncio.to_thread(rs.record_delete_failure, self.ctx, job, exc)
            return
        if progress.done:
            await asyncio.to_thread(rs.record_deleted, self.ctx, job)


async def _logged(coro: Coroutine[Any, Any, None], desktop_id: str) -> None:
    """Run a desktop task; log what it raised (the next pass retries level-triggered)."""
    try:
        await coro
    except Exception:
        log.exception(
            "platform task for desktop %s failed; the next pass retries",
            desktop_id,
            extra={"desktop_id": desktop_id},
        )


async def _console_or_none(driver: Any, ref: InstanceRef) -> Any:
    try:
        return await driver.console(ref)
    except ProviderError:
        return None


async def _wait(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
