"""The simulated platform's state: VMs in memory, shared by every driver using the same name."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hotdesk.providers.base import InstanceStatus


@dataclass
class SimVm:
    """One simulated VM."""

    name: str
    platform_id: str
    tags: dict[str, str]
    status: InstanceStatus
    ready_at: float
    datastore: str | None = None
    host: str = "sim-host-1"
    base: str | None = None
    log: list[str] = field(default_factory=list)


class SimPlatform:
    """A named simulated platform. Tests reach it with ``SimPlatform.named(name)``.

    It is a simulator: nothing here is a real virtual machine.
    """

    _registry: dict[str, SimPlatform] = {}
    _registry_lock = threading.Lock()

    def __init__(self, name: str) -> None:
        self.name = name
        self.vms: dict[str, SimVm] = {}
        self.outage = False
        self.failure_rate = 0.0
        self.fail_next_creates = 0
        self.clock: Callable[[], float] = time.monotonic
        self.create_calls: list[tuple[str, float]] = []
        self.delete_calls: list[tuple[str, float]] = []
        self.bases: dict[str, str] = {}
        self.publish_calls: list[str] = []
        self.random = random.Random(0)
        self._counter = 0
        self.lock = threading.Lock()

    @classmethod
    def named(cls, name: str) -> SimPlatform:
        """The platform called ``name``, created on first use."""
        with cls._registry_lock:
            if name not in cls._registry:
                cls._registry[name] = cls(name)
            return cls._registry[name]

    @classmethod
    def forget(cls, name: str) -> None:
        """Drop a platform and all its VMs (tests)."""
        with cls._registry_lock:
            cls._registry.pop(name, None)

    def next_platform_id(self) -> str:
        """A fresh platform id, like a cloud's instance id."""
        with self.lock:
            self._counter += 1
            return f"sim-{self._counter:08d}"

    def inject_leak(self, name: str, tags: dict[str, str]) -> SimVm:
        """Put a running VM on the platform behind the broker's back (tests of the leak sweep)."""
        vm = SimVm(
            name=name,
            platform_id=self.next_platform_id(),
            tags=dict(tags),
            status=InstanceStatus.RUNNING,
            ready_at=self.clock(),
        )
        with self.lock:
            self.vms[name] = vm
        return vm

    def should_fail_create(self) -> bool:
        """Decide whether the next create fails (scripted failures first, then the rate)."""
        with self.lock:
            if self.fail_next_creates > 0:
                self.fail_next_creates -= 1
                return True
            return self.failure_rate > 0 and self.random.random() < self.failure_rate
