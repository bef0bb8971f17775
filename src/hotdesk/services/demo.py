"""The demo pool ``make run`` starts with: real VMs on libvirt when it can, the simulator if not."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from hotdesk.services.bootstrap import ensure_demo_pool
from hotdesk.services.context import BrokerContext

log = logging.getLogger("hotdesk.demo")

SIM_NOTE = "demo pool 'demo' runs on the SIMULATED platform (driver 'sim': no real VMs, no console)"
LIBVIRT_NOTE = "demo pool 'demo' runs REAL VMs on libvirt/QEMU (qemu:///system)"


def ensure_demo(ctx: BrokerContext, tenant_id: str, *, platform: str, data_dir: Path) -> str:
    """Create the demo pool on ``platform`` (auto, libvirt or sim); say which one it runs on.

    ``auto`` uses libvirt when it answers and the demo guest image builds, and falls back to the
    simulator otherwise, saying so loudly.
    """
    if platform == "sim":
        ensure_demo_pool(ctx, tenant_id)
        return SIM_NOTE
    reason = _libvirt_demo(ctx, tenant_id, data_dir)
    if reason is None:
        return LIBVIRT_NOTE
    if platform == "libvirt":
        raise RuntimeError(f"the libvirt demo cannot run: {reason}")
    ensure_demo_pool(ctx, tenant_id)
    return f"WARNING: libvirt is not usable ({reason}).\n  {SIM_NOTE}"


def _libvirt_demo(ctx: BrokerContext, tenant_id: str, data_dir: Path) -> str | None:
    from hotdesk.providers.libvirt.probe import libvirt_unavailable

    reason = libvirt_unavailable()
    if reason is not None:
        return reason
    from hotdesk.images.demo import build_demo_image

    try:
        image = build_demo_image((data_dir / "images" / "demo").resolve(), progress=log.info)
    except Exception as exc:  # noqa: BLE001 - any build failure means: fall back, say why
        return f"the demo guest image did not build: {exc}"
    # The guest's agent reports "ready" over QEMU user networking (has_agent, networks: [user])
    # to the broker's agent URL (default http://10.0.2.2:<api port>, see server.prepare_broker).
    spec = asdict(image.template_spec(memory_mib=160, agent=True))
    spec["networks"] = list(spec["networks"])
    spec["security_groups"] = list(spec["security_groups"])
    ensure_demo_pool(
        ctx,
        tenant_id,
        provider_kind="libvirt",
        provider_config={"uris": ["qemu:///system"], "datastores": ["hotdesk-demo"]},
        template_spec=spec,
    )
    return None
