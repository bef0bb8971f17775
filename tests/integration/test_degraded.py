"""Degraded mode (S1): a platform outage plus flaky creates, on the SIMULATED platform.

Real time, the real ``Reconciler.run_forever``: a 60 s outage (``HOTDESK_TEST_OUTAGE_SECONDS``
to change it) while 30% of creates fail. Claims of ready desktops and their console tickets
keep working; the breaker stops the calls; the pool is back at its warm size soon after.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from hotdesk.db.models import DesktopRow
from hotdesk.domain.states import DesktopState as S
from hotdesk.services import claims, consoles, pools
from hotdesk.settings import ReconcilerSettings
from tests.support import World, make_world

OUTAGE_SECONDS = float(os.environ.get("HOTDESK_TEST_OUTAGE_SECONDS", "60"))
WARM = 8
READY_FOR_USER = (S.ASSIGNED.value, S.CONNECTED.value)


@pytest.fixture
def flaky_world(sqlite_url: str) -> Iterator[World]:
    settings = ReconcilerSettings(
        interval_seconds=1,
        health_interval_seconds=2,
        sweep_interval_seconds=5,
        backoff_base_seconds=1,
        backoff_max_seconds=10,
        max_create_attempts=5,
        provider_call_timeout_seconds=5,
    )
    sim = {"failure_rate": 0.3, "create_latency": 0.05, "boot_latency": 0.2, "seed": 3}
    world = make_world(sqlite_url, settings=settings, sim=sim)
    yield world
    world.ctx.db.dispose()


def idle_ready(world: World, pool_id: str) -> int:
    with world.ctx.db.read() as session:
        rows = session.scalars(select(DesktopRow).where(DesktopRow.pool_id == pool_id)).all()
    return sum(1 for d in rows if d.state == S.READY.value and d.user_id is None)


def work_calls(by_method: dict[str, int]) -> int:
    """Platform calls other than health checks (which go on during an outage, by design)."""
    return sum(n for method, n in by_method.items() if method != "check")


async def wait_for_warm(world: World, pool_id: str, timeout: float) -> float:
    started = time.monotonic()
    while idle_ready(world, pool_id) < WARM:
        if time.monotonic() - started > timeout:
            return float("inf")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_outage_with_flaky_creates_claims_work_and_the_pool_recovers(
    flaky_world: World,
) -> None:
    world = flaky_world
    users = [world.user(f"agent{i}") for i in range(6)]
    world.pool("calls", warm=WARM, max=40, retention=600, users=users)
    pool_id = pools.get_pool_row(world.ctx, world.admin, "calls").id
    stop = asyncio.Event()
    loop_task = asyncio.create_task(world.reconciler.run_forever(stop))
    try:
        assert await wait_for_warm(world, pool_id, 60) < 60, "warm before the outage"

        driver = world.reconciler.drivers.get(world.reconciler.drivers.provider_ids()[0])
        calls_before = work_calls(driver.stats.by_method)
        world.platform.outage = True
        outage_ends = time.monotonic() + OUTAGE_SECONDS
        served = []
        for user in users:  # claims spread over the outage
            await asyncio.sleep(OUTAGE_SECONDS / (len(users) + 1))
            started = time.perf_counter()
            card = await asyncio.to_thread(claims.connect, world.ctx, user, "calls")
            served.append(time.perf_counter() - started)
            assert card.desktop_state in READY_FOR_USER, "a ready desktop, at once"
            assert card.desktop_id is not None
            ticket = await asyncio.to_thread(
                consoles.issue_ticket, world.ctx, user, card.desktop_id
            )
            assert ticket.ticket.startswith("hdc_"), "its console ticket is issued"
        await asyncio.sleep(max(0.0, outage_ends - time.monotonic()))
        assert driver.breaker.opened_count >= 1, "the breaker opened during the outage"
        calls_during = work_calls(driver.stats.by_method) - calls_before
        assert calls_during <= 10, f"{calls_during} platform calls: the breaker did not hold"

        world.platform.outage = False
        recovered_in = await wait_for_warm(world, pool_id, 60)
        print(
            f"\noutage {OUTAGE_SECONDS:.0f}s: {len(served)} claims served, slowest "
            f"{max(served) * 1000:.1f} ms; platform calls (other than health checks) made "
            "during the outage: "
            f"{calls_during}; back at warm {WARM} in {recovered_in:.1f}s after the outage"
        )
        assert recovered_in <= 30, f"back at warm size {recovered_in:.1f}s after the outage"
    finally:
        stop.set()
        await loop_task

    with world.ctx.db.read() as session:
        rows = session.scalars(select(DesktopRow).where(DesktopRow.pool_id == pool_id)).all()
    owners = Counter(d.user_id for d in rows if d.user_id and d.state != S.DELETED.value)
    assert len(owners) == len(users) and max(owners.values()) == 1
