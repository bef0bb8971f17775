"""Desktop lifecycle on libvirt: create (linked clone + define + start), delete, power, console.

Every method blocks; ``LibvirtProvider`` runs them in its thread pool.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
import time
from pathlib import Path
from typing import Any

from hotdesk.domain.errors import PermanentError, TemporaryError
from hotdesk.domain.names import TAG_BROKER, TAG_DESKTOP
from hotdesk.providers.base import (
    ConsoleEndpoint,
    CreateRequest,
    DeleteProgress,
    Instance,
    InstanceRef,
    PowerAction,
)
from hotdesk.providers.libvirt import storage
from hotdesk.providers.libvirt.accel import AccelChoice, choose_accel
from hotdesk.providers.libvirt.config import USER_NETWORK, LibvirtConfig
from hotdesk.providers.libvirt.connections import Hosts, error_code, is_local_uri, libvirt_module
from hotdesk.providers.libvirt.domain_xml import (
    DesktopMetadata,
    DomainSpec,
    agent_parameters,
    build_domain_xml,
    desktop_networks,
    disk_paths,
    guest_cmdline,
    vnc_endpoint,
)
from hotdesk.providers.libvirt.instances import (
    Found,
    console_log_path,
    find,
    list_hotdesk,
    read_log,
    to_instance,
    truncate_log,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_GIB = 1 << 30
_SHUTOFF_NEVER_STARTED = 0  # virDomainShutoffReason UNKNOWN: defined, never started


class Desktops:
    """Blocking desktop operations over all configured hosts."""

    def __init__(self, cfg: LibvirtConfig, hosts: Hosts) -> None:
        self.cfg = cfg
        self.hosts = hosts
        self._accel: dict[str, AccelChoice] = {}
        self._name_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def accel(self, uri: str) -> AccelChoice:
        """The acceleration of host ``uri`` (detected once per connection of the driver)."""
        if uri not in self._accel:
            conn = self.hosts.conn(uri)
            self._accel[uri] = choose_accel(conn, self.cfg.accel, local=is_local_uri(uri))
        return self._accel[uri]

    def _lock_for(self, name: str) -> threading.Lock:
        with self._locks_lock:
            return self._name_locks.setdefault(name, threading.Lock())

    def create(self, req: CreateRequest) -> Instance:
        """Idempotent create: an existing domain of the same desktop is returned (and started
        if it was defined but never started); one of another desktop is refused."""
        self._validate(req)
        with self._lock_for(req.name):
            found = find(self.hosts, req.name)
            if found is not None:
                return self._existing(found, req)
            uri = self.place(req.target)
            conn = self.hosts.conn(uri)
            datastore = req.datastore or self.cfg.datastores[0]
            pool = storage.ensure_pool(conn, self.cfg, datastore)
            base = self._base_volume(conn, pool, req)
            overlay = storage.create_overlay(
                pool,
                req.name + storage.OVERLAY_SUFFIX,
                base,
                capacity=(req.template.disk_gib or 0) * _GIB,
            )
            xml = build_domain_xml(self._domain_spec(req, uri, datastore, overlay, base))
            log = self._console_log(req.name, uri)
            dom = conn.defineXML(xml)
            truncate_log(log)
            dom.create()
            return to_instance(self.cfg, Found(uri, dom, _metadata_of(req, datastore, base, log)))

    def _validate(self, req: CreateRequest) -> None:
        if not _NAME.match(req.name):
            raise PermanentError(f"desktop name {req.name!r} is not a valid domain/volume name")
        if req.datastore and req.datastore not in self.cfg.datastores:
            raise PermanentError(f"unknown datastore {req.datastore!r}")
        unknown = [n for n in req.template.networks if n not in self.cfg.networks]
        if unknown:
            raise PermanentError(f"networks {unknown} are not configured for this provider")
        if req.target and req.target not in self.cfg.uris:
            raise PermanentError(f"unknown target host {req.target!r}")
        if req.agent is not None:
            try:
                agent_parameters(req.agent)
            except ValueError as exc:
                raise PermanentError(str(exc)) from exc

    def _existing(self, found: Found, req: CreateRequest) -> Instance:
        if found.meta.tags.get(TAG_DESKTOP) != req.tags.get(TAG_DESKTOP):
            raise PermanentError(f"a domain named {req.name!r} belongs to another desktop")
        state, reason = found.dom.state(0)
        if state == 5 and reason == _SHUTOFF_NEVER_STARTED:  # crashed between define and start
            truncate_log(console_log_path(self.cfg, found))
            found.dom.create()
        return to_instance(self.cfg, found)

    def place(self, target: str | None) -> str:
        """The host for a new desktop: ``target`` if given, else the one with fewest desktops."""
        if target:
            return target
        if len(self.hosts.uris) == 1:
            return self.hosts.uris[0]
        counts: dict[str, int] = {}
        for uri in self.hosts.uris:
            try:
                counts[uri] = len(list_hotdesk(self.hosts, uri))
            except TemporaryError:
                continue
        if not counts:
            raise TemporaryError("no libvirt host is reachable", delay=10.0)
        return min(counts, key=lambda uri: (counts[uri], self.hosts.uris.index(uri)))

    def _base_volume(self, conn: Any, pool: Any, req: CreateRequest) -> Any:
        lv = libvirt_module()
        if req.image_ref:
            try:
                return conn.storageVolLookupByPath(req.image_ref)
            except lv.libvirtError as exc:
                if error_code(exc) != lv.VIR_ERR_NO_STORAGE_VOL:
                    raise
            # Published elsewhere but not on this host yet: publish it here under the same name.
            name = Path(req.image_ref).name
        else:
            name = ""
        source = storage.inspect_source(req.template.image)
        if not name:
            name = storage.base_volume_name(_image_revision(source), source.fmt)
        return storage.publish_base(conn, pool, source, name)

    def _domain_spec(
        self, req: CreateRequest, uri: str, datastore: str, overlay: Any, base: Any
    ) -> DomainSpec:
        extra = req.template.extra
        cmdline = extra.get("cmdline")
        if extra.get("kernel"):
            cmdline = guest_cmdline(
                str(cmdline or ""), name=req.name, display_name=req.display_name, agent=req.agent
            )
        log = self._console_log(req.name, uri)
        networks = desktop_networks(
            tuple(req.template.networks),
            agent=req.agent is not None,
            allowed=tuple(self.cfg.networks),
            user=USER_NETWORK,
        )
        return DomainSpec(
            name=req.name,
            vcpus=req.template.vcpus,
            memory_mib=req.template.memory_mib,
            disk_path=overlay.path(),
            accel=self.accel(uri).accel,
            metadata=_metadata_of(req, datastore, base, log),
            console_log=str(log),
            machine=str(extra.get("machine", self.cfg.machine)),
            vnc_listen=self.cfg.vnc_listen,
            kernel=extra.get("kernel"),
            initrd=extra.get("initrd"),
            cmdline=cmdline,
            networks=networks,
            tb_cache_mib=self.cfg.tb_cache_mib,
            user_network=USER_NETWORK,
            oem_strings=agent_parameters(req.agent) if req.agent else (),
        )

    def _console_log(self, name: str, uri: str) -> Path:
        if is_local_uri(uri):
            self.cfg.console_log_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        return self.cfg.console_log_dir / f"{name}.log"

    def delete(self, ref: InstanceRef) -> DeleteProgress:
        """Destroy and undefine the domain, then delete its overlay and log; missing = done."""
        lv = libvirt_module()
        with self._lock_for(ref.name):
            found = find(self.hosts, ref.name, hint=ref.host)
            if found is not None:
                disks = disk_paths(found.dom.XMLDesc(0))
                log = console_log_path(self.cfg, found)
                _destroy(found.dom)
                flags = (
                    lv.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                    | lv.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                    | lv.VIR_DOMAIN_UNDEFINE_NVRAM
                )
                try:
                    found.dom.undefineFlags(flags)
                except lv.libvirtError as exc:
                    if error_code(exc) != lv.VIR_ERR_NO_DOMAIN:
                        raise
                conn = self.hosts.conn(found.uri)
                overlay_name = ref.name + storage.OVERLAY_SUFFIX
                for path in disks:
                    if Path(path).name == overlay_name:
                        storage.delete_volume(conn, path, pools=[])
                if is_local_uri(found.uri):
                    log.unlink(missing_ok=True)
            self._delete_orphan_overlays(ref.name)
        return DeleteProgress(done=True)

    def _delete_orphan_overlays(self, name: str) -> None:
        """Overlays left by a create that crashed before the domain was defined."""
        for uri in self.hosts.uris:
            conn = self.hosts.conn(uri)
            for datastore in self.cfg.datastores:
                pool = storage.existing_pool(conn, datastore)
                if pool is None:
                    continue
                vol = storage.find_volume(pool, name + storage.OVERLAY_SUFFIX)
                if vol is not None:
                    vol.delete(0)

    def require(self, ref: InstanceRef) -> Found:
        """The domain of ``ref``; ``PermanentError`` if it does not exist."""
        found = find(self.hosts, ref.name, hint=ref.host)
        if found is None:
            raise PermanentError(f"no domain named {ref.name!r}")
        return found

    def power(self, ref: InstanceRef, action: PowerAction) -> None:
        """on / off / restart (off + on) / force-restart (reset) of a desktop."""
        found = self.require(ref)
        dom = found.dom
        log = console_log_path(self.cfg, found)
        if action is PowerAction.OFF:
            self._stop(dom, graceful=not self.cfg.hard_off)
        elif action is PowerAction.ON:
            self._start(dom, log)
        elif action is PowerAction.RESTART:
            self._stop(dom, graceful=True)
            self._start(dom, log)
        elif dom.isActive():
            truncate_log(log)
            dom.reset(0)
            if dom.state(0)[0] == 3:
                dom.resume()
        else:
            self._start(dom, log)

    def _start(self, dom: Any, log: Path) -> None:
        state = dom.state(0)[0]
        if state == 3:
            dom.resume()
        elif state == 7:
            dom.pMWakeup(0)
        elif not dom.isActive():
            truncate_log(log)
            dom.create()

    def _stop(self, dom: Any, *, graceful: bool) -> None:
        lv = libvirt_module()
        if not dom.isActive():
            return
        if graceful and self.cfg.shutdown_timeout > 0:
            with contextlib.suppress(lv.libvirtError):
                dom.shutdown()
            deadline = time.monotonic() + self.cfg.shutdown_timeout
            while time.monotonic() < deadline and dom.isActive():
                time.sleep(0.2)
        _destroy(dom)

    def console(self, ref: InstanceRef) -> ConsoleEndpoint:
        """The VNC endpoint of a running desktop."""
        found = self.require(ref)
        if not found.dom.isActive():
            raise TemporaryError(f"{ref.name!r} is not running: no console", delay=5.0)
        endpoint = vnc_endpoint(found.dom.XMLDesc(0))
        if endpoint is None:
            raise PermanentError(f"{ref.name!r} has no VNC console")
        host, port = endpoint
        if host in ("0.0.0.0", "::", ""):
            host = _uri_host(found.uri) or "127.0.0.1"
        return ConsoleEndpoint(protocol="vnc", host=host, port=port)

    def console_log(self, ref: InstanceRef) -> str:
        """The serial console log of a desktop (this machine must see the log directory)."""
        found = self.require(ref)
        path = console_log_path(self.cfg, found)
        if not is_local_uri(found.uri):
            return f"(console log of {ref.name} is on host {found.uri}: {path})\n"
        return read_log(path)

    def list(self, owner: str) -> list[Instance]:
        """Every desktop tagged with broker ``owner`` on every host (all hosts must answer)."""
        out = []
        for uri in self.hosts.uris:
            for found in list_hotdesk(self.hosts, uri):
                if found.meta.tags.get(TAG_BROKER) == owner:
                    out.append(to_instance(self.cfg, found))
        return out


def _metadata_of(req: CreateRequest, datastore: str, base: Any, log: Path) -> DesktopMetadata:
    return DesktopMetadata(
        tags=dict(req.tags),
        display_name=req.display_name,
        ready_marker=req.template.extra.get("ready_marker"),
        datastore=datastore,
        base_image=base.path(),
        console_log=str(log),
    )


def _destroy(dom: Any) -> None:
    lv = libvirt_module()
    try:
        if dom.isActive():
            dom.destroy()
    except lv.libvirtError as exc:
        if error_code(exc) not in (lv.VIR_ERR_OPERATION_INVALID, lv.VIR_ERR_NO_DOMAIN):
            raise


def _image_revision(source: storage.SourceImage) -> str:
    """A stable id of an unpublished image file: its name plus a digest of path, size, mtime."""
    stat = source.path.stat()
    key = f"{source.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"{source.path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _uri_host(uri: str) -> str | None:
    rest = uri.partition("://")[2]
    host = rest.split("/", 1)[0].rpartition("@")[2].split(":", 1)[0]
    return host or None
