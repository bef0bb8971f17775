"""The ``driver_case`` fixture: one object per driver that the contract suite runs against.

A driver case offers:

- ``provider``: the driver under test (a ``Provider``);
- ``template``: a ``TemplateSpec`` the driver can build desktops from;
- ``owner``: the broker id to tag desktops with;
- ``name(suffix)``: a VM name unique to this case (so parallel runs never collide);
- ``await wait_ready(ref, timeout)``: poll until the desktop is ready (fail after ``timeout``);
- ``await inject_foreign(name, tags)``: put a VM on the platform behind the broker's back.

``sim`` runs everywhere and fast. ``libvirt`` uses ``tests/providers/libvirt_support.py`` (real
QEMU domains) and is skipped with the reason when libvirt is not available here.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from hotdesk.providers.base import CreateRequest, InstanceRef, Provider, TemplateSpec
from hotdesk.providers.sim import SimConfig, SimPlatform, SimProvider


@dataclass
class SimCase:
    """The contract case of the SIMULATED platform (no real VM is created)."""

    provider: SimProvider
    template: TemplateSpec
    owner: str
    platform: SimPlatform
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    slow: bool = False

    def name(self, suffix: str) -> str:
        """A unique VM name."""
        return f"ct-{self.run_id}-{suffix}"

    async def wait_ready(self, ref: InstanceRef, timeout: float = 5.0) -> None:
        """Poll until the desktop is ready."""
        await _poll_ready(self.provider, ref, timeout, interval=0.01)

    async def inject_foreign(self, name: str, tags: dict[str, str]) -> None:
        """A VM made behind the broker's back (another broker's, or a leak)."""
        self.platform.inject_leak(name, tags)


@dataclass
class LibvirtCase:
    """The contract case of real libvirt/QEMU domains (wraps ``LibvirtTestbed``)."""

    testbed: Any
    slow: bool = True

    @property
    def provider(self) -> Provider:
        """The libvirt driver."""
        provider: Provider = self.testbed.provider
        return provider

    @property
    def template(self) -> TemplateSpec:
        """The demo guest's template."""
        template: TemplateSpec = self.testbed.template
        return template

    @property
    def owner(self) -> str:
        """The testbed's broker id."""
        owner: str = self.testbed.broker_id
        return owner

    def name(self, suffix: str) -> str:
        """A domain name the testbed cleans up."""
        name: str = self.testbed.name(suffix)
        return name

    async def wait_ready(self, ref: InstanceRef, timeout: float = 120.0) -> None:
        """Poll until the guest reports ready."""
        await self.testbed.wait_ready(ref, timeout=timeout)

    async def inject_foreign(self, name: str, tags: dict[str, str]) -> None:
        """A domain created outside this broker's bookkeeping (here: through the driver)."""
        await self.provider.create_desktop(
            CreateRequest(name=name, display_name=name, tags=tags, template=self.template)
        )


async def _poll_ready(
    provider: Provider, ref: InstanceRef, timeout: float, interval: float
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        inst = await provider.get_desktop(ref)
        if inst is not None and inst.ready:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{ref.name} not ready after {timeout} s: {inst}")
        await asyncio.sleep(interval)


@pytest_asyncio.fixture(params=["sim", pytest.param("libvirt", marks=pytest.mark.libvirt)])
async def driver_case(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """One driver under the contract suite (see the module docstring)."""
    if request.param == "sim":
        name = f"contract-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        provider = SimProvider(SimConfig(platform=name))
        case = SimCase(
            provider=provider,
            template=TemplateSpec(image="contract-image", vcpus=1, memory_mib=256),
            owner=f"broker-{uuid.uuid4().hex[:8]}",
            platform=provider.platform,
        )
        try:
            yield case
        finally:
            await provider.close()
            SimPlatform.forget(name)
        return
    support = _libvirt_support()
    reason = support.libvirt_available()
    if reason is not None:
        pytest.skip(reason)
    async with support.libvirt_testbed() as testbed:
        yield LibvirtCase(testbed)


def _libvirt_support() -> Any:
    module = "tests.providers.libvirt_support"
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not there yet")
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # e.g. libvirt-python missing
        pytest.skip(f"{module} cannot be imported: {exc}")
