"""Finding hotdesk's domains on the hosts and describing them as ``Instance`` objects.

Blocking helpers shared by the desktop, image and health code (call from the thread pool).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotdesk.domain.errors import TemporaryError
from hotdesk.providers.base import Instance, InstanceRef, InstanceStatus
from hotdesk.providers.libvirt.config import LibvirtConfig
from hotdesk.providers.libvirt.connections import Hosts, error_code, libvirt_module
from hotdesk.providers.libvirt.domain_xml import NS_URI, DesktopMetadata, parse_metadata

# virDomainState values (stable libvirt ABI).
_RUNNING, _BLOCKED, _PAUSED, _SHUTDOWN, _SHUTOFF, _CRASHED, _PMSUSPENDED = 1, 2, 3, 4, 5, 6, 7
_SHUTOFF_CRASHED = 3  # virDomainShutoffReason
_PAUSED_BROKEN = (5, 10)  # virDomainPausedReason: IOERROR, CRASHED
_PAUSED_STARTING_UP = 11
_LOG_TAIL_BYTES = 1 << 20


@dataclass(frozen=True)
class Found:
    """A hotdesk domain and the host it lives on."""

    uri: str
    dom: Any
    meta: DesktopMetadata


def read_metadata(dom: Any) -> DesktopMetadata | None:
    """hotdesk's metadata of ``dom``, or ``None`` if hotdesk did not create it."""
    lv = libvirt_module()
    try:
        xml = dom.metadata(lv.VIR_DOMAIN_METADATA_ELEMENT, NS_URI, 0)
    except lv.libvirtError as exc:
        if error_code(exc) in (lv.VIR_ERR_NO_DOMAIN_METADATA, lv.VIR_ERR_NO_DOMAIN):
            return None
        raise
    return parse_metadata(xml)


def lookup(hosts: Hosts, name: str, *, hint: str | None = None) -> tuple[str, Any] | None:
    """The domain called ``name`` on any host (the ``hint`` host first), or ``None``.

    Raises ``TemporaryError`` when a host that might hold it cannot be asked.
    """
    lv = libvirt_module()
    order = [hint] if hint in hosts.uris else []
    order += [uri for uri in hosts.uris if uri != hint]
    unreachable: list[str] = []
    for uri in order:
        try:
            conn = hosts.conn(uri)
        except TemporaryError:
            unreachable.append(uri)
            continue
        try:
            return uri, conn.lookupByName(name)
        except lv.libvirtError as exc:
            if error_code(exc) != lv.VIR_ERR_NO_DOMAIN:
                raise
    if unreachable:
        raise TemporaryError(f"cannot tell whether {name!r} exists: {unreachable} unreachable")
    return None


def find(hosts: Hosts, name: str, *, hint: str | None = None) -> Found | None:
    """The domain ``name`` with its hotdesk metadata (empty tags if hotdesk did not make it)."""
    hit = lookup(hosts, name, hint=hint)
    if hit is None:
        return None
    meta = read_metadata(hit[1])
    return Found(hit[0], hit[1], meta or DesktopMetadata(tags={}))


def list_hotdesk(hosts: Hosts, uri: str) -> list[Found]:
    """Every domain on host ``uri`` that carries hotdesk metadata."""
    conn = hosts.conn(uri)
    found = []
    for dom in conn.listAllDomains(0):
        meta = read_metadata(dom)
        if meta is not None:
            found.append(Found(uri, dom, meta))
    return found


def to_instance(cfg: LibvirtConfig, found: Found) -> Instance:
    """The ``Instance`` view of a domain: status, tags and readiness."""
    state, reason = found.dom.state(0)
    status = _status(state, reason)
    ready = status is InstanceStatus.RUNNING and is_ready(cfg, found)
    error = None
    if status is InstanceStatus.ERROR:
        error = f"domain state {state} reason {reason}"
    return Instance(
        ref=InstanceRef(name=found.dom.name(), platform_id=found.dom.UUIDString(), host=found.uri),
        status=status,
        tags=dict(found.meta.tags),
        ready=ready,
        datastore=found.meta.datastore,
        error=error,
    )


def _status(state: int, reason: int) -> InstanceStatus:
    if state in (_RUNNING, _BLOCKED, _SHUTDOWN):
        return InstanceStatus.RUNNING
    if state in (_PAUSED, _PMSUSPENDED):
        if reason == _PAUSED_STARTING_UP:
            return InstanceStatus.BUILDING
        # QEMU pauses a guest it cannot run (I/O error, guest crash, KVM emulation failure).
        return InstanceStatus.ERROR if reason in _PAUSED_BROKEN else InstanceStatus.PAUSED
    if state == _SHUTOFF:
        return InstanceStatus.ERROR if reason == _SHUTOFF_CRASHED else InstanceStatus.STOPPED
    if state == _CRASHED:
        return InstanceStatus.ERROR
    return InstanceStatus.BUILDING


def is_ready(cfg: LibvirtConfig, found: Found) -> bool:
    """Running, and the ready marker (if the template has one) is in the console log."""
    marker = found.meta.ready_marker
    if not marker:
        return True
    text = read_log(console_log_path(cfg, found))
    return any(line.strip().startswith(marker) for line in text.splitlines())


def console_log_path(cfg: LibvirtConfig, found: Found) -> Path:
    """Where the domain's serial console is logged."""
    if found.meta.console_log:
        return Path(found.meta.console_log)
    return cfg.console_log_dir / f"{found.dom.name()}.log"


def read_log(path: Path) -> str:
    """The last MiB of a console log ('' if there is none yet)."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(max(0, size - _LOG_TAIL_BYTES))
            data = fh.read()
    except FileNotFoundError:
        return ""
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n")


def truncate_log(path: Path) -> None:
    """Empty a console log before (re)booting, so readiness reflects this boot only."""
    try:
        with path.open("r+b") as fh:
            fh.truncate(0)
    except FileNotFoundError:
        pass
