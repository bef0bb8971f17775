"""What every use case needs: the database, the clock, wake-ups and settings."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hotdesk.db.engine import Database
from hotdesk.settings import ReconcilerSettings


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Wakeups:
    """Hints that a pool needs a reconcile pass soon (R2). Safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._listeners: list[Callable[[], None]] = []
        self._publishers: list[Callable[[str], None]] = []

    def notify(self, pool_id: str, *, from_peer: bool = False) -> None:
        """Ask for a pass over ``pool_id`` as soon as possible, here and (unless the hint came
        from another broker process) in the other processes too."""
        with self._lock:
            self._pending.add(pool_id)
            listeners = list(self._listeners)
            publishers = [] if from_peer else list(self._publishers)
        for listener in listeners:
            listener()
        for publish in publishers:
            publish(pool_id)

    def pending(self) -> bool:
        """Tell whether any pool is waiting for a pass."""
        with self._lock:
            return bool(self._pending)

    def take(self) -> set[str]:
        """Return and clear the pools asked for."""
        with self._lock:
            pending, self._pending = self._pending, set()
        return pending

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from the notifying thread) on every hint."""
        with self._lock:
            self._listeners.append(listener)

    def add_publisher(self, publish: Callable[[str], None]) -> None:
        """Call ``publish(pool_id)`` on every local hint (relay to other processes)."""
        with self._lock:
            self._publishers.append(publish)

    def remove_publisher(self, publish: Callable[[str], None]) -> None:
        """Stop relaying hints through ``publish``."""
        with self._lock:
            if publish in self._publishers:
                self._publishers.remove(publish)


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user of a tenant, or the system."""

    tenant_id: str
    user_id: str | None
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        """Tenant administrators manage everything in their tenant."""
        return self.role == "tenant-admin"

    @property
    def label(self) -> str:
        """How the actor is written in the event log."""
        return self.username if self.user_id else f"system:{self.username}"


def system_actor(tenant_id: str, name: str = "reconciler") -> Actor:
    """The broker itself acting (reconciler, sweeper)."""
    return Actor(tenant_id=tenant_id, user_id=None, username=name, role="system")


@dataclass
class BrokerContext:
    """The shared dependencies of the use cases."""

    db: Database
    broker_id: str
    settings: ReconcilerSettings = field(default_factory=ReconcilerSettings)
    clock: Callable[[], datetime] = utcnow
    wakeups: Wakeups = field(default_factory=Wakeups)
    agent_secret: bytes | None = None

    def now(self) -> datetime:
        """The current time according to this context's clock."""
        return self.clock()

    def wakeups_pending(self) -> bool:
        """Tell whether a wake-up hint is waiting."""
        return self.wakeups.pending()

    def seconds(self, value: float) -> timedelta:
        """A duration in seconds as a timedelta."""
        return timedelta(seconds=value)
