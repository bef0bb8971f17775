"""Real VMs on libvirt/QEMU (TCG here): linked clones, boot, power, console, delete, leaks.

Skipped with the reason when libvirt/QEMU is not set up (run ``sudo scripts/setup-libvirt.sh``).
Boots cost ~5 CPU-seconds each under TCG, so at most two desktops start at once.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from hotdesk.domain.errors import PermanentError
from hotdesk.domain.names import TAG_BROKER, TAG_DESKTOP, TAG_POOL
from hotdesk.providers.base import (
    Instance,
    InstanceRef,
    InstanceStatus,
    PowerAction,
    PublishRequest,
)
from hotdesk.providers.libvirt.domain_xml import DesktopMetadata, DomainSpec, build_domain_xml
from tests.providers.libvirt_support import (
    LibvirtTestbed,
    libvirt_available,
    libvirt_testbed_fixture,
)

_SKIP = libvirt_available()
pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.skipif(_SKIP is not None, reason=_SKIP or ""),
]

testbed = libvirt_testbed_fixture()


def _backing_file(path: str) -> str | None:
    out = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", path], check=True, capture_output=True
    ).stdout
    backing: str | None = json.loads(out).get("backing-filename")
    return backing


def _read(path: str) -> str:
    return Path(path).read_text()


def _exists(path: str) -> bool:
    return Path(path).exists()


def _mode(path: str) -> int:
    return Path(path).stat().st_mode


def _disk_path(tb: LibvirtTestbed, name: str) -> Path:
    return tb.config.datastore_dir(tb.config.datastores[0]) / f"{name}.qcow2"


async def _vnc_banner(host: str, port: int) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    try:
        return await asyncio.wait_for(reader.readexactly(12), 5)
    finally:
        writer.close()
        await writer.wait_closed()


async def _create_booted(tb: LibvirtTestbed, suffixes: list[str]) -> list[tuple[Instance, float]]:
    """Create desktops, starting at most two at a time; return each with its create time."""
    gate = asyncio.Semaphore(2)

    async def one(suffix: str) -> tuple[Instance, float]:
        async with gate:
            start = time.perf_counter()
            inst = await tb.provider.create_desktop(tb.request(suffix))
            took = time.perf_counter() - start
            await tb.wait_ready(inst.ref)
            return inst, took

    return list(await asyncio.gather(*(one(s) for s in suffixes)))


async def test_check_reports_versions_and_acceleration(testbed: LibvirtTestbed) -> None:
    health = await testbed.provider.check()
    assert health.ok, health
    assert health.facts["accel"] in ("kvm", "tcg")
    assert health.facts["libvirt_version"] and health.facts["qemu_version"]
    assert health.facts["hosts"][testbed.config.uris[0]]["reachable"] is True
    cpu_virt = re.search(r"\b(vmx|svm)\b", _read("/proc/cpuinfo"))
    if cpu_virt is None:  # e.g. this lab: /dev/kvm is a software KVM, must not be used
        assert health.facts["accel"] == "tcg"


async def test_linked_clones_boot_power_console_and_delete(testbed: LibvirtTestbed) -> None:
    tb = testbed
    booted = await _create_booted(tb, ["a", "b", "c"])
    instances = [inst for inst, _ in booted]
    bases = {_backing_file(str(_disk_path(tb, i.ref.name))) for i in instances}
    assert len(bases) == 1 and next(iter(bases)), bases
    base = next(iter(bases))
    assert base is not None and Path(base).name.startswith("hotdesk-base-")
    for inst, took in booted:
        assert took < 5.0, f"create of {inst.ref.name} took {took:.2f} s"
        assert _disk_path(tb, inst.ref.name).stat().st_size < 4 << 20
        assert inst.ref.host == tb.config.uris[0] and inst.ref.platform_id

    first = instances[0]
    # Idempotent create; another desktop's name is refused.
    again = await tb.provider.create_desktop(tb.request("a"))
    assert again.ref.platform_id == first.ref.platform_id
    with pytest.raises(PermanentError):
        other = tb.request("a")
        await tb.provider.create_desktop(
            type(other)(**{**other.__dict__, "tags": {**other.tags, TAG_DESKTOP: "someone"}})
        )

    log = await tb.provider.console_log(first.ref)
    assert "hotdesk demo desktop: Test desktop a" in log
    assert f"HOTDESK-READY {first.ref.name}" in log

    endpoint = await tb.provider.console(first.ref)
    assert endpoint.protocol == "vnc" and endpoint.host and endpoint.port
    assert await _vnc_banner(endpoint.host, endpoint.port) == b"RFB 003.008\n"

    await _power_cycle(tb, instances[1].ref)

    listed = {i.ref.name: i for i in await tb.provider.list_desktops(owner=tb.broker_id)}
    assert set(listed) == {i.ref.name for i in instances}
    assert all(i.tags[TAG_BROKER] == tb.broker_id for i in listed.values())

    for inst in instances:
        assert (await tb.provider.delete_desktop(inst.ref)).done
    for inst in instances:
        assert await tb.provider.get_desktop(inst.ref) is None
        assert not _disk_path(tb, inst.ref.name).exists()
        assert (await tb.provider.delete_desktop(inst.ref)).done  # again: still success
    assert await tb.provider.list_desktops(owner=tb.broker_id) == []
    assert _exists(base)  # the base stays until unpublished


async def _power_cycle(tb: LibvirtTestbed, ref: InstanceRef) -> None:
    await tb.provider.power(ref, PowerAction.OFF)
    off = await tb.provider.get_desktop(ref)
    assert off is not None and off.status is InstanceStatus.STOPPED and not off.ready
    await tb.provider.power(ref, PowerAction.ON)
    await tb.wait_ready(ref)
    await tb.provider.power(ref, PowerAction.FORCE_RESTART)
    assert "HOTDESK-READY" not in await tb.provider.console_log(ref)
    await tb.wait_ready(ref)
    await tb.provider.power(ref, PowerAction.RESTART)  # ACPI shutdown, then start
    await tb.wait_ready(ref)
    assert "power button pressed" not in await tb.provider.console_log(ref)


async def test_domain_made_behind_the_brokers_back_is_listed(testbed: LibvirtTestbed) -> None:
    import libvirt

    tb = testbed
    name = tb.name("leak")
    tags = {TAG_BROKER: tb.broker_id, TAG_POOL: "pool-x", TAG_DESKTOP: "desk-x", "x": "a&b <c>"}
    xml = build_domain_xml(
        DomainSpec(
            name=name,
            vcpus=1,
            memory_mib=128,
            disk_path=str(tb.root / "nowhere.qcow2"),
            accel="tcg",
            metadata=DesktopMetadata(tags=tags, display_name="leaked"),
            console_log=str(tb.root / "leak.log"),
        )
    )
    conn = libvirt.open(tb.config.uris[0])
    try:
        conn.defineXML(xml)  # defined, never started: enough to be found by tags
    finally:
        conn.close()
    listed = await tb.provider.list_desktops(owner=tb.broker_id)
    assert [(i.ref.name, i.tags, i.status) for i in listed] == [
        (name, tags, InstanceStatus.STOPPED)
    ]
    assert (await tb.provider.delete_desktop(listed[0].ref)).done
    assert await tb.provider.get_desktop(listed[0].ref) is None


async def test_publish_clone_from_published_and_unpublish(testbed: LibvirtTestbed) -> None:
    tb = testbed
    req = PublishRequest(
        image=tb.template.image, revision_id="rev-1", datastore=None, tags={"t": "1"}
    )
    published = await tb.provider.publish_image(req)
    assert published == await tb.provider.publish_image(req)  # idempotent
    assert _exists(published.ref) and _mode(published.ref) & 0o222 == 0  # read-only
    inst = await tb.provider.create_desktop(tb.request("pub", image_ref=published.ref))
    assert _backing_file(str(_disk_path(tb, inst.ref.name))) == published.ref
    with pytest.raises(PermanentError):
        await tb.provider.unpublish_image(published)
    bases = await tb.provider.list_published_images()
    assert [(b.ref, b.users) for b in bases] == [(published.ref, [inst.ref.name])]
    assert await tb.provider.unused_published_images() == []
    await tb.provider.delete_desktop(inst.ref)
    assert [u.ref for u in await tb.provider.unused_published_images()] == [published.ref]
    await tb.provider.unpublish_image(published)
    await tb.provider.unpublish_image(published)  # idempotent
    assert not _exists(published.ref)
