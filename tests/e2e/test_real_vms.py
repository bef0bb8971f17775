"""End to end on real VMs: a broker (SQLite, real reconciler, HTTP agent endpoints) driving a pool
of demo desktops on libvirt/QEMU whose guest agents report over QEMU user networking.

Scenario (pool warm=2, max=3, retention 3 s, template = the demo image with its agent):
two desktops become ready only when their agents report; alice connects and the pool refills;
bob connects (the pool is full); alice disconnects, her VM is destroyed after the retention and
replaced; the template changes and Recreate replaces the idle desktops while bob's keeps its
revision and its domain.  Everything is removed at the end.

Skipped with the reason when libvirt/QEMU is not set up (``sudo scripts/setup-libvirt.sh``).
Boots cost ~5 CPU-seconds each under TCG: the provider allows two at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select
from typer.testing import CliRunner

from hotdesk.api.app import create_app
from hotdesk.cli import app as cli_app
from hotdesk.db.models import DesktopRow, EventRow
from hotdesk.providers.base import InstanceRef
from hotdesk.services import catalog, claims, pools
from hotdesk.services.context import Actor
from hotdesk.settings import ReconcilerSettings
from tests.providers.libvirt_support import (
    IMAGE_DIR,
    LibvirtTestbed,
    libvirt_available,
    libvirt_testbed,
)
from tests.support import World, make_world

_SKIP = libvirt_available()
pytestmark = [
    pytest.mark.libvirt,
    pytest.mark.skipif(_SKIP is not None, reason=_SKIP or ""),
]

POOL = "real"
WAIT = 150.0  # seconds any one step may take on a busy 2-core host
LIVE = ("creating", "booting", "ready", "assigned", "connected", "disconnected", "deleting")


@dataclass
class Scene:
    """The broker under test, the libvirt testbed it drives and the pool's users."""

    world: World
    tb: LibvirtTestbed
    alice: Actor
    bob: Actor


@contextlib.contextmanager
def _api_server(world: World) -> Iterator[int]:
    """The broker's HTTP API on 127.0.0.1:<free port>, in a thread (guests post to it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(world.ctx), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="hotdesk-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.asynccontextmanager
async def _reconciler(world: World) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(world.reconciler.run_forever(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await world.reconciler.drivers.close()


def _setup_pool(world: World, tb: LibvirtTestbed) -> tuple[Actor, Actor]:
    """A libvirt provider on the testbed's datastore, the agent template, the pool, 2 users."""
    catalog.save_provider(
        world.ctx,
        world.admin,
        "qemu",
        kind="libvirt",
        config=tb.config.model_dump(mode="json"),
        max_concurrent_provisioning=2,
    )
    catalog.save_template(world.ctx, world.admin, "desk", _template_spec(tb, memory_mib=160))
    world.provider, world.template = "qemu", "desk"
    alice, bob = world.user("alice"), world.user("bob")
    world.pool(
        POOL,
        warm=2,
        max=3,
        retention=3,
        users=[alice, bob],
        name_pattern=f"hdt-{tb.run_id}-{{SEQUENCE}}",
        provision_concurrency=2,
    )
    return alice, bob


def _template_spec(tb: LibvirtTestbed, *, memory_mib: int) -> dict[str, Any]:
    spec = asdict(tb.image.template_spec(memory_mib=memory_mib, agent=True))
    spec["networks"] = list(spec["networks"])
    spec["security_groups"] = list(spec["security_groups"])
    return spec


def _desktops(world: World) -> list[DesktopRow]:
    with world.ctx.db.read() as session:
        rows = session.scalars(select(DesktopRow).where(DesktopRow.state.in_(LIVE)))
        return list(rows)


def _events(world: World, desktop_id: str) -> list[str]:
    with world.ctx.db.read() as session:
        rows = session.scalars(select(EventRow.kind).where(EventRow.desktop_id == desktop_id))
        return list(rows)


async def _until(what: str, check: Callable[[], bool], timeout: float = WAIT) -> float:
    """Poll ``check`` (letting the reconciler run) until true; the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")
        await asyncio.sleep(0.5)
    return time.monotonic() - start


def _idle_ready(world: World) -> list[DesktopRow]:
    return [d for d in _desktops(world) if d.state == "ready" and d.user_id is None]


async def _domain_memory_mib(tb: LibvirtTestbed, name: str) -> int | None:
    import xml.etree.ElementTree as ET

    import libvirt

    def read() -> int | None:
        conn = libvirt.open(tb.config.uris[0])
        try:
            xml = conn.lookupByName(name).XMLDesc(0)
        except libvirt.libvirtError:
            return None
        finally:
            conn.close()
        return int(ET.fromstring(xml).findtext("memory") or 0) // 1024

    return await asyncio.to_thread(read)


async def _first_ready(scene: Scene) -> None:
    world, tb = scene.world, scene.tb
    took = await _until("2 desktops are ready", lambda: len(_idle_ready(world)) == 2)
    print(f"2 desktops ready (agent-reported) after {took:.1f} s")
    for desktop in _idle_ready(world):
        assert desktop.agent_ready, desktop.name
        assert "agent-ready" in _events(world, desktop.id)
        log = await tb.provider.console_log(InstanceRef(name=desktop.name, host=desktop.host))
        assert "HOTDESK-AGENT ready sent" in log, log


async def _claim_and_refill(scene: Scene) -> DesktopRow:
    world = scene.world
    card = claims.connect(world.ctx, scene.alice, POOL)
    assert card.state.value == "connected", card
    took = await _until(
        "the pool refills to 2 idle (3 in all)",
        lambda: len(_idle_ready(world)) == 2 and len(_desktops(world)) == 3,
    )
    print(f"refilled after {took:.1f} s")
    (held,) = [d for d in _desktops(world) if d.id == card.desktop_id]
    return held


async def _retention_destroys_and_replaces(scene: Scene, alices: DesktopRow) -> DesktopRow:
    world, tb = scene.world, scene.tb
    bobs_card = claims.connect(world.ctx, scene.bob, POOL)
    assert bobs_card.state.value == "connected"
    assert len(_desktops(world)) == 3  # full: nothing new until alice's desktop goes
    overlay = Path(tb.config.storage_root) / tb.config.datastores[0] / f"{alices.name}.qcow2"
    assert overlay.exists()
    claims.disconnect(world.ctx, scene.alice, POOL)
    took = await _until(
        "alice's desktop is destroyed after the retention",
        lambda: all(d.id != alices.id for d in _desktops(world)),
    )
    print(f"retention expired and the VM was destroyed after {took:.1f} s")
    assert await tb.provider.get_desktop(InstanceRef(name=alices.name)) is None
    assert not overlay.exists()
    took = await _until(
        "a replacement is ready",
        lambda: len(_idle_ready(world)) == 2 and len(_desktops(world)) == 3,
    )
    print(f"replacement ready after {took:.1f} s")
    (bobs,) = [d for d in _desktops(world) if d.id == bobs_card.desktop_id]
    return bobs


async def _recreate_keeps_the_assigned_desktop(scene: Scene, bobs: DesktopRow) -> None:
    world, tb = scene.world, scene.tb
    before = await tb.provider.get_desktop(InstanceRef(name=bobs.name))
    assert before is not None
    idle_before = {d.id for d in _idle_ready(world)}
    catalog.save_template(world.ctx, world.admin, "desk", _template_spec(tb, memory_mib=176))
    replaced = pools.recreate_pool(world.ctx, world.admin, POOL)
    assert set(replaced) == idle_before
    took = await _until(
        "Recreate replaced the idle desktops",
        lambda: len(_idle_ready(world)) == 2 and not idle_before & {d.id for d in _desktops(world)},
    )
    print(f"Recreate done after {took:.1f} s")
    revisions = {d.id: d.template_revision_id for d in _desktops(world)}
    assert revisions[bobs.id] == bobs.template_revision_id
    for desktop in _idle_ready(world):
        assert revisions[desktop.id] != bobs.template_revision_id
        assert await _domain_memory_mib(tb, desktop.name) == 176
    after = await tb.provider.get_desktop(InstanceRef(name=bobs.name))
    assert after is not None and after.ref.platform_id == before.ref.platform_id
    assert await _domain_memory_mib(tb, bobs.name) == 160


async def _drain(scene: Scene) -> None:
    world, tb = scene.world, scene.tb
    claims.release(world.ctx, scene.bob, POOL)
    pools.delete_pool(world.ctx, world.admin, POOL)
    await _until("the pool is drained", lambda: not _desktops(world), timeout=90)
    assert await tb.provider.list_desktops(owner=tb.broker_id) == []


async def test_a_pool_of_real_desktops_with_guest_agents(sqlite_url: str) -> None:
    started = time.monotonic()
    settings = ReconcilerSettings(
        interval_seconds=1, sweep_interval_seconds=5, health_interval_seconds=5
    )
    world = make_world(sqlite_url, settings=settings)
    async with libvirt_testbed() as tb:
        tb.broker_id = world.ctx.broker_id  # the testbed removes whatever this broker made
        with _api_server(world) as port:
            world.ctx.settings.agent_url = f"http://10.0.2.2:{port}"
            alice, bob = _setup_pool(world, tb)
            scene = Scene(world, tb, alice, bob)
            async with _reconciler(world):
                await _first_ready(scene)
                alices = await _claim_and_refill(scene)
                bobs = await _retention_destroys_and_replaces(scene, alices)
                await _recreate_keeps_the_assigned_desktop(scene, bobs)
                await _drain(scene)
    world.ctx.db.dispose()
    print(f"whole scenario: {time.monotonic() - started:.1f} s")


def test_cli_builds_the_demo_image() -> None:
    """``hotdesk image build-demo --out DIR`` prints the manifest (reusing the test build)."""
    result = CliRunner().invoke(cli_app, ["image", "build-demo", "--out", str(IMAGE_DIR)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("manifest.json")
