"""A circuit breaker per provider (S1 degraded mode).

After ``failures`` consecutive calls that failed for a transient reason (timeouts, outages,
unexpected driver errors) the breaker opens: calls fail at once with ``CircuitOpen`` instead of
piling up against a dead platform. After a cooldown, one health check is the trial: success
closes the breaker, failure reopens it with a doubled cooldown (up to ``max_cooldown``).
A definite answer from the platform (``PermanentError``) proves it is up and never counts.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from hotdesk.domain.errors import TemporaryError


class CircuitOpen(TemporaryError):
    """The provider's breaker is open: the call was not made."""


class BreakerState(enum.StrEnum):
    """Where a breaker is."""

    CLOSED = "closed"
    OPEN = "open"


class CircuitBreaker:
    """Counts consecutive transient failures; opens, waits, and lets a trial through."""

    def __init__(
        self,
        *,
        failures: int = 5,
        cooldown: float = 5.0,
        max_cooldown: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.cooldown = cooldown
        self.opened_at = 0.0
        self.opened_count = 0
        self.recoveries = 0  # times it closed again after being open
        self.last_error: str | None = None

    def allows_calls(self) -> bool:
        """Whether calls go to the platform now (the breaker is closed)."""
        return self.state is BreakerState.CLOSED

    def trial_due(self) -> bool:
        """Whether the breaker is open and its cooldown has passed (time for a trial)."""
        return self.state is BreakerState.OPEN and self.clock() >= self.opened_at + self.cooldown

    def seconds_until_trial(self) -> float:
        """How long until the next trial (0 when closed or due)."""
        if self.state is BreakerState.CLOSED:
            return 0.0
        return max(0.0, self.opened_at + self.cooldown - self.clock())

    def refuse(self, what: str) -> CircuitOpen:
        """The error a call gets while the breaker is open."""
        wait = self.seconds_until_trial()
        return CircuitOpen(
            f"{what}: platform unavailable (circuit breaker open after "
            f"{self.consecutive_failures} failures; next trial in {wait:.0f}s; "
            f"last error: {self.last_error})",
            delay=wait,
        )

    def record_success(self) -> None:
        """A call (or the trial) succeeded: close and reset."""
        if self.state is BreakerState.OPEN:
            self.recoveries += 1
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.cooldown = self.base_cooldown

    def record_failure(self, error: str) -> None:
        """A call failed transiently: count it; open at the threshold, or reopen after a trial."""
        self.consecutive_failures += 1
        self.last_error = error
        if self.state is BreakerState.OPEN:
            self.cooldown = min(self.max_cooldown, self.cooldown * 2)
            self.opened_at = self.clock()
        elif self.consecutive_failures >= self.failures:
            self.state = BreakerState.OPEN
            self.opened_at = self.clock()
            self.opened_count += 1

    def snapshot(self) -> dict[str, object]:
        """The breaker's state for health reports."""
        return {
            "breaker": self.state.value,
            "consecutive_failures": self.consecutive_failures,
            "next_trial_seconds": round(self.seconds_until_trial(), 1),
        }
