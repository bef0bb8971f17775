"""The ``sim`` driver: implements the whole contract against a ``SimPlatform``."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from hotdesk.domain.errors import PermanentError, TemporaryError
from hotdesk.domain.names import TAG_BROKER, TAG_DESKTOP
from hotdesk.providers.base import (
    ConsoleEndpoint,
    CreateRequest,
    DeleteProgress,
    Instance,
    InstanceRef,
    InstanceStatus,
    PowerAction,
    ProviderHealth,
    PublishedImage,
    PublishRequest,
)
from hotdesk.providers.sim.platform import SimPlatform, SimVm


class SimConfig(BaseModel):
    """Settings of the simulator (latencies in seconds)."""

    model_config = ConfigDict(extra="forbid")

    platform: str = Field(default="default", description="name of the simulated platform")
    state_file: str | None = Field(
        default=None,
        description="keep the simulated VMs in this SQLite file, shared by several broker "
        "processes on one host (multi-process tests); default: in memory",
    )
    create_latency: float = Field(default=0.0, ge=0)
    boot_latency: float = Field(default=0.0, ge=0)
    delete_latency: float = Field(default=0.0, ge=0)
    failure_rate: float = Field(default=0.0, ge=0, le=1)
    outage: bool = False
    networks: list[str] = Field(default_factory=lambda: ["default"])
    datastores: list[str] = Field(default_factory=list)
    targets: list[str] = Field(default_factory=list)
    seed: int = 0
    publishes_images: bool = Field(
        default=False, description="simulate publishing base images once per datastore (T3)"
    )
    publish_latency: float = Field(default=0.0, ge=0)


class SimProvider:
    """SIMULATED platform driver (kind ``sim``): no real VM is ever created."""

    kind: ClassVar[str] = "sim"
    config_model: ClassVar[type[BaseModel]] = SimConfig

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.platform = SimPlatform.named(config.platform, state_file=config.state_file)
        self.supports_publish = config.publishes_images
        self.platform.failure_rate = config.failure_rate
        self.platform.random.seed(config.seed)
        if config.outage:
            self.platform.outage = True

    def _check_outage(self) -> None:
        if self.platform.outage:
            raise TemporaryError("simulated platform outage", delay=1.0)

    async def check(self) -> ProviderHealth:
        """Report the simulator as healthy unless its outage switch is on."""
        if self.platform.outage:
            return ProviderHealth(ok=False, detail="simulated outage", facts={"simulator": True})
        return ProviderHealth(
            ok=True,
            detail="simulator (no real VMs)",
            facts={"simulator": True, "vms": len(self.platform.all_vms())},
        )

    async def create_desktop(self, req: CreateRequest) -> Instance:
        """Create a simulated VM, or return the existing one with the same name and tags."""
        self._check_outage()
        self.platform.create_calls.append((req.name, time.perf_counter()))
        existing = self.platform.get_vm(req.name)
        if existing is not None:
            if existing.tags.get(TAG_DESKTOP) != req.tags.get(TAG_DESKTOP):
                raise PermanentError(f"a VM named {req.name!r} belongs to another desktop")
            return _instance(existing, self.platform.clock())
        if self.config.create_latency:
            await asyncio.sleep(self.config.create_latency)
        self._check_outage()
        if self.platform.should_fail_create():
            raise TemporaryError("simulated create failure", delay=1.0)
        now = self.platform.clock()
        vm = SimVm(
            name=req.name,
            platform_id=self.platform.next_platform_id(),
            tags=dict(req.tags),
            status=InstanceStatus.BUILDING,
            ready_at=now + self.config.boot_latency,
            datastore=req.datastore,
            base=req.image_ref,
            log=[f"[sim] SIMULATED desktop {req.display_name} ({req.name}) created"],
        )
        return _instance(self.platform.add_vm_if_absent(vm), now)

    async def get_desktop(self, ref: InstanceRef) -> Instance | None:
        """Return the simulated VM by name, or ``None``."""
        self._check_outage()
        vm = self.platform.get_vm(ref.name)
        return None if vm is None else _instance(vm, self.platform.clock())

    async def list_desktops(self, *, owner: str) -> list[Instance]:
        """Every simulated VM tagged with broker id ``owner``."""
        self._check_outage()
        now = self.platform.clock()
        vms = self.platform.all_vms()
        return [_instance(vm, now) for vm in vms if vm.tags.get(TAG_BROKER) == owner]

    async def delete_desktop(self, ref: InstanceRef) -> DeleteProgress:
        """Remove the simulated VM; a missing VM is success."""
        self._check_outage()
        self.platform.delete_calls.append((ref.name, time.perf_counter()))
        if self.config.delete_latency:
            await asyncio.sleep(self.config.delete_latency)
        self.platform.remove_vm(ref.name)
        return DeleteProgress(done=True)

    async def power(self, ref: InstanceRef, action: PowerAction) -> None:
        """Change the simulated VM's power state."""
        self._check_outage()
        vm = self.platform.get_vm(ref.name)
        if vm is None:
            raise PermanentError(f"no VM named {ref.name!r}")
        now = self.platform.clock()
        if action is PowerAction.OFF:
            vm.status = InstanceStatus.STOPPED
        else:
            if action is not PowerAction.ON or vm.status is not InstanceStatus.RUNNING:
                vm.ready_at = now + self.config.boot_latency
            vm.status = InstanceStatus.BUILDING if vm.ready_at > now else InstanceStatus.RUNNING
        vm.log.append(f"[sim] power {action.value}")
        self.platform.save_vm(vm)

    async def console(self, ref: InstanceRef) -> ConsoleEndpoint:
        """A placeholder endpoint: the simulator serves no real console."""
        self._check_outage()
        if self.platform.get_vm(ref.name) is None:
            raise PermanentError(f"no VM named {ref.name!r}")
        return ConsoleEndpoint(protocol="sim", host=None, port=None, url=None)

    async def console_log(self, ref: InstanceRef) -> str:
        """The simulated boot log of the VM."""
        self._check_outage()
        vm = self.platform.get_vm(ref.name)
        if vm is None:
            raise PermanentError(f"no VM named {ref.name!r}")
        _instance(vm, self.platform.clock())
        return "\n".join(vm.log) + "\n"

    async def publish_image(self, req: PublishRequest) -> PublishedImage:
        """Simulate copying an image once to a datastore; idempotent."""
        self._check_outage()
        ref = f"sim-base:{req.revision_id}:{req.datastore or 'default'}"
        if ref not in self.platform.bases:
            self.platform.publish_calls.append(ref)
            if self.config.publish_latency:
                await asyncio.sleep(self.config.publish_latency)
            self.platform.bases[ref] = req.image
        return PublishedImage(ref=ref, datastore=req.datastore, size_bytes=1)

    async def unpublish_image(self, image: PublishedImage) -> None:
        """Remove a simulated base; refused while a simulated VM is cloned from it."""
        self._check_outage()
        users = [vm.name for vm in self.platform.all_vms() if vm.base == image.ref]
        if users:
            raise PermanentError(f"base {image.ref} is still used by {', '.join(sorted(users))}")
        self.platform.bases.pop(image.ref, None)

    async def close(self) -> None:
        """Nothing to release."""


def _instance(vm: SimVm, now: float) -> Instance:
    if vm.status is InstanceStatus.BUILDING and now >= vm.ready_at:
        vm.status = InstanceStatus.RUNNING
        vm.log.append(f"HOTDESK-READY {vm.name} (simulated)")
    ready = vm.status is InstanceStatus.RUNNING
    return Instance(
        ref=InstanceRef(name=vm.name, platform_id=vm.platform_id, host=vm.host),
        status=vm.status,
        tags=dict(vm.tags),
        ready=ready,
        datastore=vm.datastore,
    )
