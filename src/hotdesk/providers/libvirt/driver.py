"""``LibvirtProvider``: real desktops as QEMU domains on one or more libvirt hosts.

Every libvirt call blocks, so each operation runs in the driver's bounded thread pool
(``LibvirtConfig.workers`` threads); failures come out as hotdesk's typed errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from hotdesk.domain.errors import ProviderError, TemporaryError
from hotdesk.providers.base import (
    ConsoleEndpoint,
    CreateRequest,
    DeleteProgress,
    Instance,
    InstanceRef,
    PowerAction,
    ProviderHealth,
    PublishedImage,
    PublishRequest,
)
from hotdesk.providers.libvirt import publishing
from hotdesk.providers.libvirt.config import LibvirtConfig
from hotdesk.providers.libvirt.connections import Hosts, translate_error
from hotdesk.providers.libvirt.desktops import Desktops
from hotdesk.providers.libvirt.instances import find, list_hotdesk, to_instance
from hotdesk.providers.libvirt.storage import BaseInfo

T = TypeVar("T")


class LibvirtProvider:
    """Desktops as libvirt/QEMU domains booted from linked clones of published base images."""

    kind: ClassVar[str] = "libvirt"
    config_model: ClassVar[type[BaseModel]] = LibvirtConfig

    def __init__(self, config: LibvirtConfig) -> None:
        self.config = config
        self._hosts = Hosts(config.uris, workers=config.workers)
        self._desktops = Desktops(config, self._hosts)
        self._closed = False

    async def _call(self, what: str, fn: Callable[..., T], /, *args: Any) -> T:
        try:
            return await self._hosts.run(fn, *args)
        except ProviderError:
            raise
        except Exception as exc:
            raise translate_error(exc, what) from exc

    async def check(self) -> ProviderHealth:
        """Reachability, libvirt/QEMU versions and acceleration (kvm|tcg) of every host."""
        hosts: dict[str, dict[str, Any]] = {}
        for uri in self.config.uris:
            try:
                hosts[uri] = await self._call(f"check {uri}", self._host_facts, uri)
            except ProviderError as exc:
                hosts[uri] = {"reachable": False, "error": str(exc)}
        up = [facts for facts in hosts.values() if facts["reachable"]]
        down = [uri for uri, facts in hosts.items() if not facts["reachable"]]
        facts: dict[str, Any] = {"hosts": hosts}
        if up:
            for key in ("accel", "accel_reason", "libvirt_version", "qemu_version"):
                facts[key] = up[0][key]
        detail = f"{len(up)}/{len(hosts)} libvirt hosts reachable"
        if down:
            detail += f"; unreachable: {', '.join(down)}"
        return ProviderHealth(ok=bool(up), detail=detail, facts=facts)

    def _host_facts(self, uri: str) -> dict[str, Any]:
        conn = self._hosts.conn(uri)
        accel = self._desktops.accel(uri)
        return {
            "reachable": True,
            "hostname": conn.getHostname(),
            "libvirt_version": _version(conn.getLibVersion()),
            "qemu_version": _version(conn.getVersion()),
            "accel": accel.accel,
            "accel_reason": accel.reason,
            "desktops": len(list_hotdesk(self._hosts, uri)),
        }

    async def create_desktop(self, req: CreateRequest) -> Instance:
        """Linked-clone the base, define and start the domain; idempotent by name and tag."""
        return await self._call(f"create {req.name}", self._desktops.create, req)

    async def get_desktop(self, ref: InstanceRef) -> Instance | None:
        """The desktop's status, tags and readiness, or ``None`` if no host has it."""
        return await self._call(f"get {ref.name}", self._get, ref)

    def _get(self, ref: InstanceRef) -> Instance | None:
        found = find(self._hosts, ref.name, hint=ref.host)
        return None if found is None else to_instance(self.config, found)

    async def list_desktops(self, *, owner: str) -> list[Instance]:
        """Every domain tagged with broker id ``owner`` on every host, tags included."""
        return await self._call(f"list desktops of {owner}", self._desktops.list, owner)

    async def delete_desktop(self, ref: InstanceRef) -> DeleteProgress:
        """Destroy and undefine the domain and delete its overlay disk; missing = success."""
        return await self._call(f"delete {ref.name}", self._desktops.delete, ref)

    async def power(self, ref: InstanceRef, action: PowerAction) -> None:
        """Power on, off (hard, after ``shutdown_timeout`` of ACPI), restart or reset."""
        await self._call(f"power {action.value} {ref.name}", self._desktops.power, ref, action)

    async def console(self, ref: InstanceRef) -> ConsoleEndpoint:
        """The VNC host/port of the running desktop."""
        return await self._call(f"console {ref.name}", self._desktops.console, ref)

    async def console_log(self, ref: InstanceRef) -> str:
        """The desktop's serial console log (last MiB)."""
        return await self._call(f"console log {ref.name}", self._desktops.console_log, ref)

    async def publish_image(self, req: PublishRequest) -> PublishedImage:
        """Copy the image once per datastore (on every host) as a read-only base; idempotent."""
        return await self._call(
            f"publish {req.revision_id}", publishing.publish, self.config, self._hosts, req
        )

    async def unpublish_image(self, image: PublishedImage) -> None:
        """Delete a published base; ``PermanentError`` while any overlay still uses it."""
        await self._call(
            f"unpublish {image.ref}", publishing.unpublish, self.config, self._hosts, image
        )

    async def list_published_images(self) -> list[BaseInfo]:
        """Every published base on every host, with the desktops (overlays) using it."""
        return await self._call(
            "list published images", publishing.published, self.config, self._hosts
        )

    async def unused_published_images(self) -> list[PublishedImage]:
        """Published bases no overlay uses on any host: candidates for garbage collection."""
        bases = await self.list_published_images()
        used = {b.ref for b in bases if not b.unused}
        unused: dict[str, PublishedImage] = {}
        for base in bases:
            if base.ref not in used:
                unused[base.ref] = PublishedImage(base.ref, base.datastore, base.size_bytes)
        return list(unused.values())

    async def close(self) -> None:
        """Close the libvirt connections and stop the thread pool (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(TemporaryError):
            await self._hosts.run(self._hosts.close_connections)
        self._hosts.shutdown()


def _version(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"
