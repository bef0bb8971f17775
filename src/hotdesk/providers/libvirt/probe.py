"""Can this machine run libvirt/QEMU desktops? (Used by ``make run`` and the tests.)"""

from __future__ import annotations

import shutil


def libvirt_unavailable(uri: str = "qemu:///system") -> str | None:
    """``None`` if libvirt answers at ``uri`` and can run x86_64 QEMU guests; else why not."""
    try:
        import libvirt
    except ImportError:
        return "libvirt-python is not installed (run: sudo scripts/setup-libvirt.sh .venv)"
    for tool in ("qemu-img", "dpkg-deb", "apt-get"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (run: sudo scripts/setup-libvirt.sh .venv)"
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        return f"libvirtd does not answer at {uri}: {exc} (run: sudo scripts/setup-libvirt.sh)"
    try:
        conn.getDomainCapabilities(None, "x86_64", None, "qemu", 0)
    except libvirt.libvirtError as exc:
        return f"libvirt at {uri} cannot run x86_64 QEMU guests: {exc}"
    finally:
        conn.close()
    return None
