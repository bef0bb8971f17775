"""Benchmark of the libvirt driver on this machine (real QEMU guests; needs root + libvirtd).

Prints:
  1. linked-clone creation vs a full copy of the same base (a qcow2 with real data in it);
  2. create-to-ready time of the demo guest (TCG here, KVM where it works);
  3. desktops provisioned per minute at a concurrency of 2 (create + boot until ready);
  4. create-to-agent-ready: until the guest agent's "ready" POST reaches the broker over QEMU user
     networking (10.0.2.2 -> a tiny HTTP server on 127.0.0.1 standing in for the broker).

Run:  .venv/bin/python bench/bench_libvirt.py [--base-gib 1.5] [--desktops 8]
Everything it creates lives under a temporary datastore and is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from hotdesk.domain.names import desktop_tags
from hotdesk.images import build_demo_image
from hotdesk.providers.base import (
    AgentBootstrap,
    CreateRequest,
    InstanceRef,
    PublishRequest,
    TemplateSpec,
)
from hotdesk.providers.libvirt import LibvirtConfig, LibvirtProvider, storage
from hotdesk.providers.libvirt.connections import libvirt_module


def run(*cmd: str) -> None:
    """Run a command, failing loudly."""
    subprocess.run(cmd, check=True, capture_output=True)


def make_base(path: Path, gib: float) -> int:
    """A qcow2 base of ``gib`` GiB virtual size with data written into most of it."""
    size = int(gib * (1 << 30))
    run("qemu-img", "create", "-q", "-f", "qcow2", str(path), str(size))
    data = int(size * 0.8) // (64 << 20) * (64 << 20)
    run("qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a 0 {data}", str(path))
    return path.stat().st_size


def timed(fn: Any, *args: Any, **kwargs: Any) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def bench_clone_vs_copy(work: Path, gib: float, clones: int) -> dict[str, float]:
    """Linked clones (qemu-img and the driver's storage-pool path) vs full copies."""
    base = work / "base.qcow2"
    file_size = make_base(base, gib)
    base.chmod(0o444)
    img_clone = [
        timed(
            run,
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            str(base),
            "-F",
            "qcow2",
            str(work / f"qclone-{i}.qcow2"),
        )
        for i in range(clones)
    ]
    lv = libvirt_module()
    conn = lv.open("qemu:///system")
    cfg = LibvirtConfig(datastores=[f"hdbench-clone-{work.name}"], storage_root=work / "ds")
    try:
        pool = storage.ensure_pool(conn, cfg, cfg.datastores[0])
        source = storage.inspect_source(str(base))
        published = storage.publish_base(conn, pool, source, "hotdesk-base-bench.qcow2")
        pool_clone = [
            timed(storage.create_overlay, pool, f"clone-{i}.qcow2", published, capacity=0)
            for i in range(clones)
        ]
    finally:
        conn.close()
        _drop_pool(cfg.datastores[0])
    full = str(work / "full.qcow2")
    convert = timed(run, "qemu-img", "convert", "-O", "qcow2", str(base), full)
    copy = timed(shutil.copyfile, base, work / "copy.qcow2")
    return {
        "base_file_mib": file_size / (1 << 20),
        "clone_qemu_img_ms": statistics.median(img_clone) * 1000,
        "clone_pool_api_ms": statistics.median(pool_clone) * 1000,
        "copy_convert_s": convert,
        "copy_cp_s": copy,
    }


async def bench_desktops(
    work: Path, template: TemplateSpec, *, boots: int, desktops: int
) -> dict[str, float]:
    """Create-to-ready of single desktops, then a batch at concurrency 2."""
    run_id = work.name
    provider = LibvirtProvider(
        LibvirtConfig(
            datastores=[f"hdbench-{run_id}"],
            storage_root=work / "datastores",
            console_log_dir=work / "console",
        )
    )
    broker = f"bench-{run_id}"

    def request(i: str) -> CreateRequest:
        name = f"hdb-{run_id}-{i}"
        tags = desktop_tags(broker_id=broker, pool_id="bench", desktop_id=name)
        return CreateRequest(name=name, display_name=f"bench {i}", tags=tags, template=template)

    async def create_ready(req: CreateRequest) -> float:
        start = time.perf_counter()
        inst = await provider.create_desktop(req)
        while True:
            now = await provider.get_desktop(inst.ref)
            if now is not None and now.ready:
                return time.perf_counter() - start
            await asyncio.sleep(0.1)

    try:
        await provider.publish_image(
            PublishRequest(image=template.image, revision_id="bench", datastore=None, tags={})
        )
        singles = []
        for i in range(boots):
            req = request(f"s{i}")
            singles.append(await create_ready(req))
            await provider.delete_desktop(InstanceRef(name=req.name))
        gate = asyncio.Semaphore(2)

        async def gated(req: CreateRequest) -> float:
            async with gate:
                return await create_ready(req)

        start = time.perf_counter()
        await asyncio.gather(*(gated(request(f"b{i}")) for i in range(desktops)))
        batch = time.perf_counter() - start
    finally:
        for inst in await provider.list_desktops(owner=broker):
            await provider.delete_desktop(inst.ref)
        await provider.close()
        _drop_pool(f"hdbench-{run_id}")
    return {
        "ready_median_s": statistics.median(singles),
        "ready_min_s": min(singles),
        "ready_max_s": max(singles),
        "batch_s": batch,
        "per_minute": desktops / batch * 60,
    }


class _AgentSink(http.server.BaseHTTPRequestHandler):
    """Stands in for the broker's agent endpoint: notes when each desktop reports ready."""

    ready: dict[str, float] = {}

    def do_POST(self) -> None:
        """Record the first ``ready`` of each desktop and answer 200."""
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.endswith("/ready"):
            _AgentSink.ready.setdefault(body.decode(errors="replace"), time.perf_counter())
        reply = b'{"desktop": "", "state": "booting", "login": null}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


async def bench_agent_ready(
    work: Path, template: TemplateSpec, *, boots: int
) -> list[tuple[float, float]]:
    """Create-to-console-marker and create-to-agent-ready of the same single desktops, whose
    agent posts to a local HTTP server."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AgentSink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://10.0.2.2:{server.server_address[1]}"
    name = f"hdbench-{work.name}-agent"
    provider = LibvirtProvider(
        LibvirtConfig(
            datastores=[name], storage_root=work / "datastores", console_log_dir=work / "console"
        )
    )
    times = []
    try:
        for i in range(boots):
            desk = f"hdb-{work.name}-a{i}"
            tags = desktop_tags(broker_id=f"bench-{work.name}", pool_id="bench", desktop_id=desk)
            agent = AgentBootstrap(url=url, desktop_id=desk, token=os.urandom(8).hex())
            req = CreateRequest(desk, desk, tags, template, agent=agent)
            start = time.perf_counter()
            inst = await provider.create_desktop(req)
            while True:
                now = await provider.get_desktop(inst.ref)
                if now is not None and now.ready:
                    break
                await asyncio.sleep(0.1)
            marker = time.perf_counter() - start
            times.append((marker, await _agent_ready_at(desk) - start))
            await provider.delete_desktop(InstanceRef(name=desk))
    finally:
        for inst in await provider.list_desktops(owner=f"bench-{work.name}"):
            await provider.delete_desktop(inst.ref)
        await provider.close()
        _drop_pool(name)
        server.shutdown()
    return times


async def _agent_ready_at(desktop: str, timeout: float = 180.0) -> float:
    """When the agent of ``desktop`` first reported ready (perf_counter time)."""
    for _ in range(int(timeout * 10)):
        hits = [at for body, at in _AgentSink.ready.items() if desktop in body]
        if hits:
            return hits[0]
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the agent of {desktop} did not report ready within {timeout:.0f} s")


def _drop_pool(name: str) -> None:
    lv = libvirt_module()
    conn = lv.open("qemu:///system")
    try:
        pool = conn.storagePoolLookupByName(name)
        for vol in pool.listAllVolumes(0):
            vol.delete(0)
        pool.destroy()
        pool.undefine()
    except lv.libvirtError:
        pass
    finally:
        conn.close()


async def _health() -> dict[str, Any]:
    provider = LibvirtProvider(LibvirtConfig())
    try:
        return (await provider.check()).facts
    finally:
        await provider.close()


def main() -> int:
    """Run the three measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-gib", type=float, default=1.5)
    parser.add_argument("--clones", type=int, default=20)
    parser.add_argument("--boots", type=int, default=3)
    parser.add_argument("--desktops", type=int, default=8)
    parser.add_argument("--image-dir", type=Path, default=Path("/var/tmp/hotdesk-test-image"))
    args = parser.parse_args()
    work = Path("/var/tmp") / f"hotdesk-bench-{uuid.uuid4().hex[:8]}"
    work.mkdir(mode=0o755)
    try:
        image = build_demo_image(args.image_dir)
        health = asyncio.run(_health())
        print(
            f"host: libvirt {health['libvirt_version']}, QEMU {health['qemu_version']}, "
            f"accel {health['accel']} ({health['accel_reason']})"
        )
        c = bench_clone_vs_copy(work, args.base_gib, args.clones)
        print(f"base image: {args.base_gib:g} GiB virtual, {c['base_file_mib']:.0f} MiB on disk")
        clone = c["clone_pool_api_ms"]
        print(f"linked clone (qemu-img create -b):    {c['clone_qemu_img_ms']:7.1f} ms (median)")
        print(f"linked clone (storage-pool API):      {clone:7.1f} ms (median)")
        print(f"full copy (qemu-img convert):         {c['copy_convert_s'] * 1000:7.0f} ms")
        print(f"full copy (cp):                       {c['copy_cp_s'] * 1000:7.0f} ms")
        fastest_copy = min(c["copy_convert_s"], c["copy_cp_s"]) * 1000
        print(f"clone is {fastest_copy / clone:.0f}x faster than the fastest full copy")
        d = asyncio.run(
            bench_desktops(work, image.template_spec(), boots=args.boots, desktops=args.desktops)
        )
        print(
            f"create-to-ready (demo guest): median {d['ready_median_s']:.1f} s "
            f"(min {d['ready_min_s']:.1f}, max {d['ready_max_s']:.1f}, n={args.boots})"
        )
        print(
            f"{args.desktops} desktops at concurrency 2: {d['batch_s']:.1f} s "
            f"= {d['per_minute']:.1f} desktops/minute"
        )
        pairs = asyncio.run(
            bench_agent_ready(work, image.template_spec(agent=True), boots=args.boots)
        )
        for label, values in (
            ("console marker", [m for m, _ in pairs]),
            ("agent ready", [a for _, a in pairs]),
        ):
            print(
                f"create-to-{label} (demo guest with agent, user networking): median "
                f"{statistics.median(values):.1f} s (min {min(values):.1f}, "
                f"max {max(values):.1f}, n={len(values)})"
            )
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
