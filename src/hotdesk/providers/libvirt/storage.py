"""Datastores (libvirt storage pools), published base images and linked-clone overlays.

A published base is a read-only volume ``hotdesk-base-<revision>.<fmt>`` copied once per datastore
and host; each desktop's disk is a qcow2 overlay ``<desktop name>.qcow2`` whose backing file is the
base, created through the storage-pool API (``<backingStore>``): ~10-20 ms, a few hundred KiB.
All functions here block: call them from the driver's thread pool.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotdesk.domain.errors import PermanentError
from hotdesk.providers.libvirt.config import LibvirtConfig
from hotdesk.providers.libvirt.connections import error_code, libvirt_module

BASE_PREFIX = "hotdesk-base-"
OVERLAY_SUFFIX = ".qcow2"
_pool_lock = threading.Lock()
_publish_locks: dict[tuple[str, str], threading.Lock] = {}


@dataclass(frozen=True)
class SourceImage:
    """A local image file to publish: its format and sizes."""

    path: Path
    fmt: str
    virtual_size: int
    file_size: int


@dataclass
class BaseInfo:
    """A published base on one host and the overlays (desktop disks) that use it."""

    ref: str
    datastore: str
    host: str
    size_bytes: int
    users: list[str] = field(default_factory=list)

    @property
    def unused(self) -> bool:
        """No overlay uses this base: the broker may unpublish it."""
        return not self.users


def ensure_pool(conn: Any, cfg: LibvirtConfig, name: str) -> Any:
    """The started storage pool ``name``, created as a ``dir`` pool under storage_root if absent."""
    lv = libvirt_module()
    with _pool_lock:
        try:
            pool = conn.storagePoolLookupByName(name)
        except lv.libvirtError as exc:
            if error_code(exc) != lv.VIR_ERR_NO_STORAGE_POOL:
                raise
            pool = conn.storagePoolDefineXML(_pool_xml(name, cfg.datastore_dir(name)), 0)
            pool.build(0)
            pool.setAutostart(1)
        if not pool.isActive():
            pool.create(0)
        return pool


def _pool_xml(name: str, path: Path) -> str:
    pool = ET.Element("pool", type="dir")
    ET.SubElement(pool, "name").text = name
    target = ET.SubElement(pool, "target")
    ET.SubElement(target, "path").text = str(path)
    perms = ET.SubElement(target, "permissions")
    ET.SubElement(perms, "mode").text = "0755"
    return ET.tostring(pool, encoding="unicode")


def existing_pool(conn: Any, name: str) -> Any | None:
    """The started pool ``name`` if it exists (never creates one)."""
    lv = libvirt_module()
    try:
        pool = conn.storagePoolLookupByName(name)
    except lv.libvirtError as exc:
        if error_code(exc) == lv.VIR_ERR_NO_STORAGE_POOL:
            return None
        raise
    if not pool.isActive():
        pool.create(0)
    return pool


def inspect_source(path: str) -> SourceImage:
    """Format and sizes of a local image file (``qemu-img info``)."""
    source = Path(path)
    if not source.is_file():
        raise PermanentError(f"image {path!r} does not exist on the broker host")
    proc = subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise PermanentError(f"cannot read image {path!r}: {proc.stderr.strip()}")
    info = json.loads(proc.stdout)
    if info.get("backing-filename"):
        raise PermanentError(f"image {path!r} has a backing file; publish a flattened image")
    return SourceImage(source, info["format"], int(info["virtual-size"]), source.stat().st_size)


def base_volume_name(revision_id: str, fmt: str) -> str:
    """Deterministic volume name of a published base."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", revision_id)[:80]
    return f"{BASE_PREFIX}{safe}.{fmt}"


def publish_base(conn: Any, pool: Any, source: SourceImage, name: str) -> Any:
    """Copy ``source`` into ``pool`` as read-only volume ``name`` once; return the volume."""
    lock = _publish_locks.setdefault((conn.getURI(), name), threading.Lock())
    with lock:
        vol = find_volume(pool, name)
        if vol is not None and _complete(vol, source):
            return vol
        if vol is not None:  # a copy interrupted by a crash: start again
            vol.delete(0)
        vol = pool.createXML(_base_xml(name, source), 0)
        try:
            _upload(conn, vol, source)
        except BaseException:
            vol.delete(0)
            raise
        return vol


def _complete(vol: Any, source: SourceImage) -> bool:
    lv = libvirt_module()
    _type, capacity, physical = vol.infoFlags(lv.VIR_STORAGE_VOL_GET_PHYSICAL)
    return bool(physical == source.file_size and capacity == source.virtual_size)


def _base_xml(name: str, source: SourceImage) -> str:
    vol = ET.Element("volume")
    ET.SubElement(vol, "name").text = name
    ET.SubElement(vol, "capacity", unit="bytes").text = str(source.virtual_size)
    ET.SubElement(vol, "allocation", unit="bytes").text = "0"
    target = ET.SubElement(vol, "target")
    ET.SubElement(target, "format", type=source.fmt)
    perms = ET.SubElement(target, "permissions")
    ET.SubElement(perms, "mode").text = "0444"
    return ET.tostring(vol, encoding="unicode")


def _upload(conn: Any, vol: Any, source: SourceImage) -> None:
    stream = conn.newStream(0)
    vol.upload(stream, 0, source.file_size, 0)
    try:
        with source.path.open("rb") as fh:
            stream.sendAll(lambda _st, nbytes, f: f.read(nbytes), fh)
        stream.finish()
    except BaseException:
        stream.abort()
        raise


def find_volume(pool: Any, name: str) -> Any | None:
    """Volume ``name`` of ``pool``, or ``None``."""
    lv = libvirt_module()
    try:
        return pool.storageVolLookupByName(name)
    except lv.libvirtError as exc:
        if error_code(exc) == lv.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise


def volume_format(vol: Any) -> str:
    """The format (qcow2, raw...) of a volume."""
    fmt = ET.fromstring(vol.XMLDesc(0)).find("target/format")
    return "raw" if fmt is None else fmt.get("type", "raw")


def volume_backing(vol: Any) -> str | None:
    """The backing file path of a volume, if it has one."""
    path = ET.fromstring(vol.XMLDesc(0)).find("backingStore/path")
    return None if path is None else path.text


def create_overlay(pool: Any, name: str, base: Any, *, capacity: int) -> Any:
    """The qcow2 overlay ``name`` backed by ``base`` (an existing right one is reused)."""
    base_path = base.path()
    vol = find_volume(pool, name)
    if vol is not None:
        if volume_backing(vol) == base_path:
            return vol
        vol.delete(0)
    xml = ET.Element("volume")
    ET.SubElement(xml, "name").text = name
    ET.SubElement(xml, "capacity", unit="bytes").text = str(max(capacity, base.info()[1]))
    ET.SubElement(xml, "allocation", unit="bytes").text = "0"
    target = ET.SubElement(xml, "target")
    ET.SubElement(target, "format", type="qcow2")
    perms = ET.SubElement(target, "permissions")
    ET.SubElement(perms, "mode").text = "0600"
    backing = ET.SubElement(xml, "backingStore")
    ET.SubElement(backing, "path").text = base_path
    ET.SubElement(backing, "format", type=volume_format(base))
    return pool.createXML(ET.tostring(xml, encoding="unicode"), 0)


def delete_volume(conn: Any, path: str, *, pools: list[Any]) -> bool:
    """Delete the volume at ``path`` (refreshing ``pools`` once if libvirt does not know it)."""
    lv = libvirt_module()
    for attempt in range(2):
        try:
            vol = conn.storageVolLookupByPath(path)
        except lv.libvirtError as exc:
            if error_code(exc) != lv.VIR_ERR_NO_STORAGE_VOL:
                raise
            if attempt == 0:
                for pool in pools:
                    pool.refresh(0)
                continue
            return False
        try:
            vol.delete(0)
        except lv.libvirtError as exc:
            if error_code(exc) != lv.VIR_ERR_NO_STORAGE_VOL:
                raise
        return True
    return False


def list_bases(conn: Any, cfg: LibvirtConfig, host: str) -> list[BaseInfo]:
    """Every published base in the configured datastores of one host, with its users."""
    found: list[BaseInfo] = []
    for datastore in cfg.datastores:
        pool = existing_pool(conn, datastore)
        if pool is None:
            continue
        bases: dict[str, BaseInfo] = {}
        backings: list[tuple[str, str | None]] = []
        for vol in pool.listAllVolumes(0):
            if vol.name().startswith(BASE_PREFIX):
                bases[vol.path()] = BaseInfo(vol.path(), datastore, host, int(vol.info()[1]))
            else:
                backings.append((vol.name(), volume_backing(vol)))
        for name, backing in backings:
            if backing in bases:
                bases[backing].users.append(name.removesuffix(OVERLAY_SUFFIX))
        found.extend(bases.values())
    return found


def users_of(conn: Any, cfg: LibvirtConfig, path: str) -> list[str]:
    """Overlays in any configured datastore of one host whose backing file is ``path``."""
    users: list[str] = []
    for datastore in cfg.datastores:
        pool = existing_pool(conn, datastore)
        if pool is None:
            continue
        users.extend(
            vol.name()
            for vol in pool.listAllVolumes(0)
            if not vol.name().startswith(BASE_PREFIX) and volume_backing(vol) == path
        )
    return users
