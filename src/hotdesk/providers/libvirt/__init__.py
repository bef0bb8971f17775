"""The libvirt/QEMU driver (kind ``libvirt``): real desktops as linked clones on libvirt hosts."""

from hotdesk.providers.libvirt.config import LibvirtConfig
from hotdesk.providers.libvirt.driver import LibvirtProvider

__all__ = ["LibvirtConfig", "LibvirtProvider"]
