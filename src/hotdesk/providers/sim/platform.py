"""The simulated platform's state: VMs shared by every driver using the same platform name.

VMs live in memory, or, with a ``state_file``, in a small SQLite file so that several broker
processes (and a test killing them) see one simulated platform.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

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
    created_by: int = field(default_factory=os.getpid)  # the broker process that created it

    def to_json(self) -> str:
        """The VM as one JSON document (file-backed platforms)."""
        data = dataclasses.asdict(self)
        data["status"] = self.status.value
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> SimVm:
        """A VM stored by ``to_json``."""
        data = json.loads(text)
        data["status"] = InstanceStatus(data["status"])
        return cls(**data)


class SimPlatform:
    """A named simulated platform. Tests reach it with ``SimPlatform.named(name)``.

    It is a simulator: nothing here is a real virtual machine.
    """

    _registry: dict[str, SimPlatform] = {}
    _registry_lock = threading.Lock()

    def __init__(self, name: str, state_file: str | None = None) -> None:
        self.name = name
        self.state_file = state_file
        self._vms: dict[str, SimVm] = {}
        self.outage = False
        self.failure_rate = 0.0
        self.fail_next_creates = 0
        # wall-clock time when processes share the file: monotonic clocks differ per process
        self.clock: Callable[[], float] = time.time if state_file else time.monotonic
        self.create_calls: list[tuple[str, float]] = []
        self.delete_calls: list[tuple[str, float]] = []
        self.bases: dict[str, str] = {}
        self.publish_calls: list[str] = []
        self.random = random.Random(0)
        self._counter = 0
        self.lock = threading.Lock()

    @classmethod
    def named(cls, name: str, *, state_file: str | None = None) -> SimPlatform:
        """The platform called ``name``, created on first use (file-backed with
        ``state_file``)."""
        with cls._registry_lock:
            known = cls._registry.get(name)
            if known is None or known.state_file != state_file:
                known = cls._registry[name] = cls(name, state_file)
                if state_file:
                    known._init_file()
            return known

    @classmethod
    def forget(cls, name: str) -> None:
        """Drop a platform and all its VMs (tests)."""
        with cls._registry_lock:
            cls._registry.pop(name, None)

    def next_platform_id(self) -> str:
        """A fresh platform id, like a cloud's instance id."""
        if self.state_file:
            return f"sim-{uuid.uuid4().hex[:12]}"
        with self.lock:
            self._counter += 1
            return f"sim-{self._counter:08d}"

    # --- the VMs --------------------------------------------------------------------------

    @property
    def vms(self) -> dict[str, SimVm]:
        """Every VM by name (in memory: the live mapping; file-backed: a snapshot)."""
        if not self.state_file:
            return self._vms
        return {vm.name: vm for vm in self.all_vms()}

    def get_vm(self, name: str) -> SimVm | None:
        """The VM called ``name``, or ``None``."""
        if not self.state_file:
            return self._vms.get(name)
        with self._file() as db:
            row = db.execute("SELECT data FROM vms WHERE name = ?", (name,)).fetchone()
        return None if row is None else SimVm.from_json(row[0])

    def all_vms(self) -> list[SimVm]:
        """Every VM."""
        if not self.state_file:
            with self.lock:
                return list(self._vms.values())
        with self._file() as db:
            return [SimVm.from_json(r[0]) for r in db.execute("SELECT data FROM vms")]

    def add_vm_if_absent(self, vm: SimVm) -> SimVm:
        """Store ``vm`` unless a VM of that name exists; return the stored one."""
        if not self.state_file:
            with self.lock:
                return self._vms.setdefault(vm.name, vm)
        with self._file() as db:
            db.execute(
                "INSERT OR IGNORE INTO vms (name, data) VALUES (?, ?)", (vm.name, vm.to_json())
            )
            row = db.execute("SELECT data FROM vms WHERE name = ?", (vm.name,)).fetchone()
        return SimVm.from_json(row[0])

    def save_vm(self, vm: SimVm) -> None:
        """Store a changed VM."""
        if not self.state_file:
            with self.lock:
                self._vms[vm.name] = vm
            return
        with self._file() as db:
            db.execute(
                "INSERT OR REPLACE INTO vms (name, data) VALUES (?, ?)", (vm.name, vm.to_json())
            )

    def remove_vm(self, name: str) -> None:
        """Remove a VM; a missing one is fine."""
        if not self.state_file:
            with self.lock:
                self._vms.pop(name, None)
            return
        with self._file() as db:
            db.execute("DELETE FROM vms WHERE name = ?", (name,))

    def _init_file(self) -> None:
        assert self.state_file
        Path(self.state_file).parent.mkdir(parents=True, exist_ok=True)
        with self._file() as db:
            db.execute("CREATE TABLE IF NOT EXISTS vms (name TEXT PRIMARY KEY, data TEXT)")

    @contextmanager
    def _file(self) -> Iterator[sqlite3.Connection]:
        assert self.state_file
        db = sqlite3.connect(self.state_file, timeout=30, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        finally:
            db.close()

    def inject_leak(self, name: str, tags: dict[str, str]) -> SimVm:
        """Put a running VM on the platform behind the broker's back (tests of the leak sweep)."""
        vm = SimVm(
            name=name,
            platform_id=self.next_platform_id(),
            tags=dict(tags),
            status=InstanceStatus.RUNNING,
            ready_at=self.clock(),
        )
        self.save_vm(vm)
        return vm

    def should_fail_create(self) -> bool:
        """Decide whether the next create fails (scripted failures first, then the rate)."""
        with self.lock:
            if self.fail_next_creates > 0:
                self.fail_next_creates -= 1
                return True
            return self.failure_rate > 0 and self.random.random() < self.failure_rate
