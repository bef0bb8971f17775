"""The guarded driver the reconciler sees: timeouts, a concurrency cap, typed errors and a
circuit breaker (S1)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from hotdesk.domain.errors import (
    CapacityExceeded,
    ProviderError,
    QuotaExceeded,
    TemporaryError,
)
from hotdesk.observability.metrics import PROVIDER_CALL_ERRORS, PROVIDER_CALL_SECONDS
from hotdesk.providers.base import (
    ConsoleEndpoint,
    CreateRequest,
    DeleteProgress,
    Instance,
    InstanceRef,
    PowerAction,
    Provider,
    ProviderHealth,
    PublishedImage,
    PublishRequest,
)
from hotdesk.providers.breaker import CircuitBreaker, CircuitOpen

T = TypeVar("T")


@dataclass
class CallStats:
    """Counters of the calls made through a guard (for health and metrics)."""

    calls: int = 0
    errors: int = 0
    last_error: str | None = None
    last_latency: float = 0.0
    by_method: dict[str, int] = field(default_factory=dict)


class GuardedProvider:
    """Wraps a driver: every call has a timeout, at most ``max_calls`` run at once, any
    unexpected exception becomes a ``TemporaryError`` so one bad driver never kills a pass,
    and a circuit breaker stops calling a platform that keeps failing."""

    def __init__(
        self,
        driver: Provider,
        *,
        timeout: float = 120.0,
        max_calls: int = 16,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.driver = driver
        self.kind = driver.kind
        self.timeout = timeout
        self.max_calls = max_calls
        self.breaker = breaker or CircuitBreaker()
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None
        self._probing = False
        self.stats = CallStats()

    async def available(self) -> bool:
        """Whether platform calls may be made now. With the breaker open and its cooldown
        over, one health check is the trial that closes (or reopens) it."""
        if self.breaker.allows_calls():
            return True
        if not self.breaker.trial_due() or self._probing:
            return False
        self._probing = True
        try:
            health = await self._guarded("check", self.driver.check, None)
            if health.ok:
                self.breaker.record_success()
            else:
                self.breaker.record_failure(f"health check: {health.detail}")
        except ProviderError as exc:
            if _trips_breaker(exc):
                self.breaker.record_failure(str(exc))
        finally:
            self._probing = False
        return self.breaker.allows_calls()

    async def _call(
        self, method: str, make: Callable[[], Awaitable[T]], *, timeout: float | None = None
    ) -> T:
        if not self.breaker.allows_calls():
            raise self.breaker.refuse(f"{self.kind}.{method}")
        try:
            result = await self._guarded(method, make, timeout)
        except ProviderError as exc:
            if _trips_breaker(exc):
                self.breaker.record_failure(str(exc))
            raise
        self.breaker.record_success()
        return result

    async def _guarded(
        self, method: str, make: Callable[[], Awaitable[T]], timeout: float | None
    ) -> T:
        self.stats.calls += 1
        self.stats.by_method[method] = self.stats.by_method.get(method, 0) + 1
        started = time.perf_counter()
        try:
            async with self._slots_here():
                return await asyncio.wait_for(make(), timeout=timeout or self.timeout)
        except ProviderError as exc:
            self._failed(exc, method)
            raise
        except TimeoutError as exc:
            limit = timeout or self.timeout
            err = TemporaryError(f"{self.kind}.{method} timed out after {limit:.0f}s")
            self._failed(err, method)
            raise err from exc
        except Exception as exc:
            err = TemporaryError(f"{self.kind}.{method} failed: {type(exc).__name__}: {exc}")
            self._failed(err, method)
            raise err from exc
        finally:
            self.stats.last_latency = time.perf_counter() - started
            PROVIDER_CALL_SECONDS.labels(self.kind, method).observe(self.stats.last_latency)

    def _slots_here(self) -> asyncio.Semaphore:
        """The call cap of the running event loop (a semaphore is bound to one loop)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots_loop is not loop:
            self._slots, self._slots_loop = asyncio.Semaphore(self.max_calls), loop
        return self._slots

    def _failed(self, exc: Exception, method: str) -> None:
        PROVIDER_CALL_ERRORS.labels(self.kind, method).inc()
        self.stats.errors += 1
        self.stats.last_error = str(exc)

    async def check(self) -> ProviderHealth:
        """See ``Provider.check``; always asked, even with the breaker open, and the
        breaker's state is added to the facts."""
        try:
            health = await self._guarded("check", self.driver.check, None)
        except ProviderError as exc:
            if _trips_breaker(exc):
                self.breaker.record_failure(str(exc))
            raise
        facts = {**health.facts, **self.breaker.snapshot()}
        return ProviderHealth(ok=health.ok, detail=health.detail, facts=facts)

    async def create_desktop(self, req: CreateRequest) -> Instance:
        """See ``Provider.create_desktop``."""
        return await self._call("create_desktop", lambda: self.driver.create_desktop(req))

    async def get_desktop(self, ref: InstanceRef) -> Instance | None:
        """See ``Provider.get_desktop``."""
        return await self._call("get_desktop", lambda: self.driver.get_desktop(ref))

    async def list_desktops(self, *, owner: str) -> list[Instance]:
        """See ``Provider.list_desktops``."""
        return await self._call("list_desktops", lambda: self.driver.list_desktops(owner=owner))

    async def delete_desktop(self, ref: InstanceRef) -> DeleteProgress:
        """See ``Provider.delete_desktop``."""
        return await self._call("delete_desktop", lambda: self.driver.delete_desktop(ref))

    async def power(self, ref: InstanceRef, action: PowerAction) -> None:
        """See ``Provider.power``."""
        await self._call("power", lambda: self.driver.power(ref, action))

    async def console(self, ref: InstanceRef) -> ConsoleEndpoint:
        """See ``Provider.console``."""
        return await self._call("console", lambda: self.driver.console(ref))

    async def console_log(self, ref: InstanceRef) -> str:
        """See ``Provider.console_log``."""
        return await self._call("console_log", lambda: self.driver.console_log(ref))

    @property
    def supports_publish(self) -> bool:
        """Whether the driver publishes base images (T3)."""
        default = callable(getattr(self.driver, "publish_image", None))
        return bool(getattr(self.driver, "supports_publish", default))

    async def publish_image(self, req: PublishRequest) -> PublishedImage:
        """See ``SupportsPublish.publish_image`` (a long timeout: images are large)."""
        publish = self.driver.publish_image  # type: ignore[attr-defined]
        return await self._call("publish_image", lambda: publish(req), timeout=1800.0)

    async def unpublish_image(self, image: PublishedImage) -> None:
        """See ``SupportsPublish.unpublish_image``."""
        unpublish = self.driver.unpublish_image  # type: ignore[attr-defined]
        await self._call("unpublish_image", lambda: unpublish(image))

    async def close(self) -> None:
        """Close the wrapped driver."""
        await self.driver.close()


def _trips_breaker(exc: ProviderError) -> bool:
    """Transient failures count; quota, capacity and permanent answers prove the platform is
    up, and a refusal by the open breaker itself is not a new failure."""
    if not isinstance(exc, TemporaryError):
        return False
    return not isinstance(exc, QuotaExceeded | CapacityExceeded | CircuitOpen)
