"""The circuit breaker and the guarded driver in degraded mode (S1)."""

from __future__ import annotations

import pytest

from hotdesk.domain.errors import PermanentError, QuotaExceeded, TemporaryError
from hotdesk.providers.base import CreateRequest, InstanceRef, PowerAction, TemplateSpec
from hotdesk.providers.breaker import BreakerState, CircuitBreaker, CircuitOpen
from hotdesk.providers.guard import GuardedProvider
from hotdesk.providers.sim import SimPlatform
from hotdesk.providers.sim.driver import SimConfig, SimProvider


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failures=3, cooldown=5, clock=Ticks())
    breaker.record_failure("a")
    breaker.record_failure("b")
    breaker.record_success()  # the run is broken
    breaker.record_failure("c")
    breaker.record_failure("d")
    assert breaker.allows_calls()
    breaker.record_failure("e")
    assert breaker.state is BreakerState.OPEN and not breaker.allows_calls()
    assert "last error: e" in str(breaker.refuse("sim.create_desktop"))


def test_trial_after_cooldown_and_doubling_up_to_the_ceiling() -> None:
    ticks = Ticks()
    breaker = CircuitBreaker(failures=1, cooldown=5, max_cooldown=15, clock=ticks)
    breaker.record_failure("down")
    assert not breaker.trial_due()
    ticks.now = 5
    assert breaker.trial_due()
    waits = []
    for _ in range(4):  # each failed trial doubles the wait, up to 15 s
        breaker.record_failure("still down")
        waits.append(breaker.seconds_until_trial())
        ticks.now += breaker.cooldown
    assert waits == [10, 15, 15, 15]
    breaker.record_success()
    assert breaker.allows_calls() and breaker.recoveries == 1 and breaker.cooldown == 5


def guarded(name: str, ticks: Ticks) -> tuple[GuardedProvider, SimPlatform]:
    SimPlatform.forget(name)
    driver = SimProvider(SimConfig(platform=name))
    breaker = CircuitBreaker(failures=3, cooldown=5, clock=ticks)
    return GuardedProvider(driver, timeout=5, breaker=breaker), driver.platform


def request(name: str) -> CreateRequest:
    return CreateRequest(
        name=name,
        display_name=name,
        tags={"hotdesk-desktop": name},
        template=TemplateSpec(image="img", vcpus=1, memory_mib=512),
    )


async def test_an_outage_trips_the_breaker_and_calls_stop_reaching_the_platform() -> None:
    ticks = Ticks()
    guard, platform = guarded("breaker-outage", ticks)
    platform.outage = True
    for i in range(3):
        with pytest.raises(TemporaryError):
            await guard.create_desktop(request(f"vm-{i}"))
    assert guard.stats.by_method["create_desktop"] == 3
    with pytest.raises(CircuitOpen):
        await guard.create_desktop(request("vm-4"))
    assert guard.stats.by_method["create_desktop"] == 3, "refused without calling the platform"
    assert not await guard.available(), "cooldown not over"

    ticks.now = 5
    assert not await guard.available(), "trial health check fails: still down"
    assert guard.breaker.cooldown == 10
    platform.outage = False
    ticks.now = 15
    assert await guard.available(), "trial succeeds: closed"
    await guard.create_desktop(request("vm-5"))
    health = await guard.check()
    assert health.facts["breaker"] == "closed"


async def test_definite_answers_do_not_trip_the_breaker() -> None:
    ticks = Ticks()
    guard, platform = guarded("breaker-definite", ticks)
    for _ in range(5):
        with pytest.raises(PermanentError):
            await guard.power(InstanceRef(name="missing"), PowerAction.ON)
    assert guard.breaker.allows_calls()

    async def quota(_req: CreateRequest) -> None:
        raise QuotaExceeded("no quota left")

    guard.driver.create_desktop = quota  # type: ignore[method-assign,assignment]
    for i in range(5):
        with pytest.raises(QuotaExceeded):
            await guard.create_desktop(request(f"q-{i}"))
    assert guard.breaker.allows_calls()
    assert platform.create_calls == []
