"""Publishing base images to datastores on every host, and finding unused ones (T3).

Blocking; ``LibvirtProvider`` runs these in its thread pool.
"""

from __future__ import annotations

from hotdesk.domain.errors import PermanentError
from hotdesk.providers.base import PublishedImage, PublishRequest
from hotdesk.providers.libvirt import storage
from hotdesk.providers.libvirt.config import LibvirtConfig
from hotdesk.providers.libvirt.connections import Hosts, error_code, libvirt_module


def publish(cfg: LibvirtConfig, hosts: Hosts, req: PublishRequest) -> PublishedImage:
    """Copy ``req.image`` once into the datastore on every host; ``ref`` is the base's path."""
    datastore = req.datastore or cfg.datastores[0]
    if datastore not in cfg.datastores:
        raise PermanentError(f"unknown datastore {datastore!r}")
    source = storage.inspect_source(req.image)
    name = storage.base_volume_name(req.revision_id, source.fmt)
    paths = []
    for uri in hosts.uris:
        conn = hosts.conn(uri)
        pool = storage.ensure_pool(conn, cfg, datastore)
        paths.append(storage.publish_base(conn, pool, source, name).path())
    return PublishedImage(ref=paths[0], datastore=datastore, size_bytes=source.file_size)


def unpublish(cfg: LibvirtConfig, hosts: Hosts, image: PublishedImage) -> None:
    """Delete a published base on every host; refused while an overlay still uses it."""
    lv = libvirt_module()
    if not _is_base_path(image.ref):
        raise PermanentError(f"{image.ref!r} is not a hotdesk published base")
    for uri in hosts.uris:
        conn = hosts.conn(uri)
        users = storage.users_of(conn, cfg, image.ref)
        if users:
            raise PermanentError(
                f"base {image.ref} is still used on {uri} by {', '.join(sorted(users))}"
            )
        try:
            vol = conn.storageVolLookupByPath(image.ref)
        except lv.libvirtError as exc:
            if error_code(exc) == lv.VIR_ERR_NO_STORAGE_VOL:
                continue
            raise
        vol.delete(0)


def published(cfg: LibvirtConfig, hosts: Hosts) -> list[storage.BaseInfo]:
    """Every published base on every host, with the overlays that use it."""
    found: list[storage.BaseInfo] = []
    for uri in hosts.uris:
        found.extend(storage.list_bases(hosts.conn(uri), cfg, uri))
    return found


def _is_base_path(path: str) -> bool:
    return path.rsplit("/", 1)[-1].startswith(storage.BASE_PREFIX)
