"""Real-VM test support for the libvirt driver: availability check, demo image, a testbed.

Use in a test module::

    from tests.providers.libvirt_support import libvirt_testbed_fixture
    libvirt_testbed = libvirt_testbed_fixture()          # a function-scoped async fixture

    async def test_x(libvirt_testbed):
        tb = libvirt_testbed                              # LibvirtTestbed
        inst = await tb.provider.create_desktop(tb.request("a"))

or directly: ``async with libvirt_testbed() as tb: ...``.  Each testbed has its own datastore
(storage pool) and console directory under /var/tmp, a unique broker id, and on exit deletes
every domain, volume and pool it made.  The demo guest is built once (cached across runs in
``$HOTDESK_TEST_IMAGE_DIR``, default /var/tmp/hotdesk-test-image).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hotdesk.domain.names import desktop_tags
from hotdesk.images import DemoImage, build_demo_image
from hotdesk.providers.base import CreateRequest, InstanceRef, TemplateSpec
from hotdesk.providers.libvirt import LibvirtConfig, LibvirtProvider

URI = os.environ.get("HOTDESK_TEST_LIBVIRT_URI", "qemu:///system")
IMAGE_DIR = Path(os.environ.get("HOTDESK_TEST_IMAGE_DIR", "/var/tmp/hotdesk-test-image"))
# Directories QEMU (user libvirt-qemu) must reach: not under pytest's 0700 tmp dirs.
WORK_ROOT = Path(os.environ.get("HOTDESK_TEST_WORK_DIR", "/var/tmp"))
READY_TIMEOUT = 90.0


def libvirt_available() -> str | None:
    """``None`` if real-VM tests can run here, else the reason to skip them."""
    from hotdesk.providers.libvirt.probe import libvirt_unavailable

    return libvirt_unavailable(URI)


@functools.cache
def demo_image() -> DemoImage:
    """The demo guest, built once per machine (later runs reuse the cached build)."""
    return build_demo_image(IMAGE_DIR)


@dataclass
class LibvirtTestbed:
    """A configured provider, the demo template and helpers to name and tag test desktops."""

    provider: LibvirtProvider
    template: TemplateSpec
    image: DemoImage
    broker_id: str
    run_id: str
    root: Path
    names: list[str] = field(default_factory=list)

    @property
    def config(self) -> LibvirtConfig:
        """The provider's settings."""
        return self.provider.config

    def name(self, suffix: str) -> str:
        """A domain name unique to this testbed (remembered for clean-up)."""
        name = f"hdt-{self.run_id}-{suffix}"
        self.names.append(name)
        return name

    def request(self, suffix: str, **changes: Any) -> CreateRequest:
        """A create request for desktop ``suffix`` with this testbed's broker tags."""
        name = self.name(suffix)
        req = CreateRequest(
            name=name,
            display_name=f"Test desktop {suffix}",
            tags=desktop_tags(broker_id=self.broker_id, pool_id="pool-test", desktop_id=name),
            template=self.template,
        )
        return replace(req, **changes)

    async def wait_ready(self, ref: InstanceRef, *, timeout: float = READY_TIMEOUT) -> float:
        """Poll ``get_desktop`` until the desktop is ready; return the seconds it took."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            inst = await self.provider.get_desktop(ref)
            if inst is not None and inst.ready:
                return loop.time() - start
            if loop.time() - start > timeout:
                log = await self.provider.console_log(ref) if inst is not None else ""
                raise AssertionError(f"{ref.name} not ready after {timeout} s: {inst}\n{log}")
            await asyncio.sleep(0.25)


@contextlib.asynccontextmanager
async def libvirt_testbed(**config: Any) -> AsyncIterator[LibvirtTestbed]:
    """A ``LibvirtTestbed`` with its own datastore; everything it made is removed on exit."""
    image = await asyncio.to_thread(demo_image)
    run_id = uuid.uuid4().hex[:8]
    root = WORK_ROOT / f"hotdesk-test-{run_id}"
    root.mkdir(mode=0o755, parents=True)
    settings: dict[str, Any] = {
        "uris": [URI],
        "datastores": [f"hdtest-{run_id}"],
        "storage_root": root / "datastores",
        "console_log_dir": root / "console",
        "shutdown_timeout": 5.0,
    }
    settings.update(config)
    provider = LibvirtProvider(LibvirtConfig(**settings))
    tb = LibvirtTestbed(
        provider=provider,
        template=image.template_spec(),
        image=image,
        broker_id=f"broker-test-{run_id}",
        run_id=run_id,
        root=root,
    )
    try:
        yield tb
    finally:
        await _clean_up(tb)


async def _clean_up(tb: LibvirtTestbed) -> None:
    try:
        for inst in await tb.provider.list_desktops(owner=tb.broker_id):
            await tb.provider.delete_desktop(inst.ref)
        for name in tb.names:
            await tb.provider.delete_desktop(InstanceRef(name=name))
    finally:
        await tb.provider.close()
        await asyncio.to_thread(_remove_pools, tb)
        shutil.rmtree(tb.root, ignore_errors=True)


def _remove_pools(tb: LibvirtTestbed) -> None:
    import libvirt

    for uri in tb.config.uris:
        conn = libvirt.open(uri)
        try:
            for dom in conn.listAllDomains(0):  # anything of this run that escaped the driver
                if dom.name().startswith(f"hdt-{tb.run_id}-"):
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
            for name in tb.config.datastores:
                with contextlib.suppress(libvirt.libvirtError):
                    pool = conn.storagePoolLookupByName(name)
                    if pool.isActive():
                        for vol in pool.listAllVolumes(0):
                            vol.delete(0)
                        pool.destroy()
                    pool.undefine()
        finally:
            conn.close()


def libvirt_testbed_fixture(**config: Any) -> Callable[..., Any]:
    """A function-scoped async pytest fixture yielding a ``LibvirtTestbed`` (skips if libvirt
    is unavailable).  Assign it to a name in a test module or conftest to use it."""

    @pytest_asyncio.fixture
    async def _testbed() -> AsyncIterator[LibvirtTestbed]:
        reason = libvirt_available()
        if reason is not None:
            pytest.skip(reason)
        async with libvirt_testbed(**config) as tb:
            yield tb

    return _testbed
