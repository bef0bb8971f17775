"""Build a tiny demo desktop guest without internet access (Debian packages from the local mirror).

The guest is a Debian kernel booted directly (PVH, uncompressed ``vmlinux``) with a busybox
initramfs.  Its ``/init`` loads the virtio (block, net) and bochs DRM modules, shows the desktop's
name on the framebuffer console, prints ``HOTDESK-READY <name>`` on the serial console, brings up
eth0 for QEMU user networking, runs the guest agent when the kernel command line names a broker
(``hotdesk.agent=``, see ``guest_init``) and serves a shell on tty1.  A small empty qcow2 disk
serves as the base image that desktops are linked-cloned from.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import io
import json
import lzma
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from hotdesk.providers.base import TemplateSpec

MANIFEST_VERSION = 5  # bump whenever the guest changes: cached builds are rebuilt
READY_MARKER = "HOTDESK-READY"
KERNEL_CMDLINE = "console=tty0 console=ttyS0 panic=-1 no_timer_check quiet"
# Load order matters: each module only needs the ones before it.
GUEST_MODULES = (
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "virtio_blk",
    "failover",
    "net_failover",
    "virtio_net",
    "drm",
    "drm_kms_helper",
    "ttm",
    "drm_ttm_helper",
    "drm_vram_helper",
    "bochs",
    "button",
    "evdev",
)
XZ_MAGIC = b"\xfd7zXZ\x00"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoImage:
    """A finished demo guest build: kernel, initramfs, base disk and boot parameters."""

    kernel: Path
    initrd: Path
    disk: Path
    cmdline: str
    ready_marker: str
    kernel_version: str
    manifest: Path

    def template_spec(
        self, *, memory_mib: int = 128, vcpus: int = 1, agent: bool = False
    ) -> TemplateSpec:
        """A ``TemplateSpec`` that boots this guest by direct kernel boot from a linked clone.

        With ``agent`` the desktop is ready only once the guest's agent reports ``ready`` to the
        broker (``has_agent``), over QEMU user networking (``networks=("user",)``).
        """
        return TemplateSpec(
            image=str(self.disk),
            vcpus=vcpus,
            memory_mib=memory_mib,
            networks=("user",) if agent else (),
            has_agent=agent,
            extra={
                "kernel": str(self.kernel),
                "initrd": str(self.initrd),
                "cmdline": self.cmdline,
                "ready_marker": self.ready_marker,
            },
        )


def build_demo_image(out_dir: Path, *, progress: Progress | None = None) -> DemoImage:
    """Build the demo guest into ``out_dir`` (reusing a finished build and cached downloads)."""
    say = progress or (lambda _msg: None)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    # QEMU runs as an unprivileged user: it must be able to reach and read these files.
    out_dir.chmod(0o755)
    with _locked(out_dir / ".lock"):
        existing = _load_manifest(out_dir)
        if existing is not None:
            say(f"reusing demo image in {out_dir}")
            return existing
        downloads = out_dir / "downloads"
        downloads.mkdir(exist_ok=True)
        busybox_deb = _download(downloads, "busybox-static", "busybox-static_*.deb", say)
        local = _local_kernel()
        if local is not None:
            say(f"using the installed kernel {local[2]}")
            vmlinuz, modules, version = local
        else:
            kernel_deb = _kernel_package(downloads, say)
            say("extracting kernel and modules")
            vmlinuz, modules, version = _extract_kernel(kernel_deb)
        busybox = _extract_member(busybox_deb, "./bin/busybox")
        vmlinux = out_dir / "vmlinux"
        _write_file(vmlinux, _decompress_vmlinuz(vmlinuz), mode=0o644)
        initrd = out_dir / "initrd.img"
        _write_file(initrd, _initramfs(busybox, modules), mode=0o644)
        disk = out_dir / "disk.qcow2"
        _create_disk(disk)
        image = DemoImage(
            kernel=vmlinux,
            initrd=initrd,
            disk=disk,
            cmdline=KERNEL_CMDLINE,
            ready_marker=READY_MARKER,
            kernel_version=version,
            manifest=out_dir / "manifest.json",
        )
        _write_manifest(image)
        say(f"demo image ready in {out_dir}")
        return image


def _load_manifest(out_dir: Path) -> DemoImage | None:
    path = out_dir / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("version") != MANIFEST_VERSION:
        return None
    image = DemoImage(
        kernel=Path(data["kernel"]),
        initrd=Path(data["initrd"]),
        disk=Path(data["disk"]),
        cmdline=data["cmdline"],
        ready_marker=data["ready_marker"],
        kernel_version=data["kernel_version"],
        manifest=path,
    )
    if not all(p.is_file() for p in (image.kernel, image.initrd, image.disk)):
        return None
    return image


def _write_manifest(image: DemoImage) -> None:
    data = {k: str(v) for k, v in asdict(image).items()}
    data["version"] = MANIFEST_VERSION  # type: ignore[assignment]
    _write_file(image.manifest, json.dumps(data, indent=2).encode() + b"\n", mode=0o644)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _kernel_package(downloads: Path, say: Progress) -> Path:
    """The Debian kernel package of this release (cached), e.g. linux-image-6.1.0-56-amd64."""
    cached = sorted(downloads.glob("linux-image-*-amd64_*.deb"))
    if cached:
        return cached[-1]
    out = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = [
        line.split(":", 1)[1].strip()
        for line in out.splitlines()
        if line.strip().startswith("Depends: linux-image-")
    ]
    if not names:
        raise RuntimeError("apt-cache knows no linux-image-*-amd64 package")
    return _download(downloads, names[0], f"{names[0]}_*.deb", say)


def _download(downloads: Path, package: str, pattern: str, say: Progress) -> Path:
    cached = sorted(downloads.glob(pattern))
    if cached:
        return cached[-1]
    say(f"apt-get download {package}")
    cmd = ["apt-get", "download", "-q", package]
    if os.geteuid() == 0:
        cmd[1:1] = ["-o", "APT::Sandbox::User=root"]
    subprocess.run(cmd, check=True, cwd=downloads, capture_output=True)
    found = sorted(downloads.glob(pattern))
    if not found:
        raise RuntimeError(f"apt-get download {package} produced no {pattern}")
    return found[-1]


def _deb_members(deb: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """Read the files selected by ``wanted`` from a .deb's data archive."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
        for member in tar:
            if member.isfile() and wanted(member.name):
                fh = tar.extractfile(member)
                if fh is not None:
                    found[member.name] = fh.read()
    proc.stdout.close()
    if proc.wait() != 0:
        raise RuntimeError(f"dpkg-deb could not read {deb}")
    return found


def _extract_member(deb: Path, name: str) -> bytes:
    members = _deb_members(deb, lambda n: n == name)
    if name not in members:
        raise RuntimeError(f"{deb.name} has no {name}")
    return members[name]


def _module_name(path: str) -> str | None:
    base = path.rsplit("/", 1)[-1]
    for suffix in (".ko", ".ko.xz"):
        if base.endswith(suffix) and base[: -len(suffix)] in GUEST_MODULES:
            return base[: -len(suffix)]
    return None


def _extract_kernel(deb: Path) -> tuple[bytes, dict[str, bytes], str]:
    """vmlinuz, the guest modules (by name, uncompressed) and the kernel version."""
    members = _deb_members(
        deb,
        lambda n: (
            n.startswith("./boot/vmlinuz-")
            or (n.startswith("./lib/modules/") and _module_name(n) is not None)
        ),
    )
    kernels = [n for n in members if n.startswith("./boot/vmlinuz-")]
    if not kernels:
        raise RuntimeError(f"{deb.name} has no /boot/vmlinuz-*")
    version = kernels[0].removeprefix("./boot/vmlinuz-")
    modules: dict[str, bytes] = {}
    for name, data in members.items():
        mod = _module_name(name)
        if mod is not None:
            modules[mod] = lzma.decompress(data) if name.endswith(".xz") else data
    missing = [m for m in GUEST_MODULES if m not in modules]
    if missing:
        raise RuntimeError(f"{deb.name} lacks modules {', '.join(missing)}")
    return members[kernels[0]], modules, version


def _local_kernel() -> tuple[bytes, dict[str, bytes], str] | None:
    """An installed Debian kernel (/boot/vmlinuz-*) with the guest modules, if complete."""
    for vmlinuz in sorted(Path("/boot").glob("vmlinuz-*-amd64"), reverse=True):
        version = vmlinuz.name.removeprefix("vmlinuz-")
        tree = Path("/lib/modules") / version / "kernel"
        found: dict[str, bytes] = {}
        for path in tree.rglob("*.ko*") if tree.is_dir() else ():
            mod = _module_name(str(path))
            if mod is not None and mod not in found:
                data = path.read_bytes()
                found[mod] = lzma.decompress(data) if path.name.endswith(".xz") else data
        try:
            kernel = vmlinuz.read_bytes()
        except OSError:
            continue
        if len(found) == len(GUEST_MODULES) and XZ_MAGIC in kernel:
            return kernel, found, version
    return None


def _decompress_vmlinuz(vmlinuz: bytes) -> bytes:
    """The uncompressed ELF kernel (direct PVH boot skips the slow decompressor under TCG)."""
    start = vmlinuz.find(XZ_MAGIC)
    if start < 0:
        raise RuntimeError("vmlinuz has no XZ payload")
    vmlinux = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(vmlinuz[start:])
    if not vmlinux.startswith(b"\x7fELF"):
        raise RuntimeError("decompressed kernel is not an ELF image")
    return vmlinux


def _create_disk(path: Path) -> None:
    if path.exists():
        path.unlink()
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"],
        check=True,
        capture_output=True,
    )
    path.chmod(0o644)


def _write_file(path: Path, data: bytes, *, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


def _initramfs(busybox: bytes, modules: dict[str, bytes]) -> bytes:
    """A gzip-compressed cpio (newc) archive with busybox, the modules and /init."""
    from hotdesk.images.guest_init import ACPI_POWER_SCRIPT, render_init

    entries: list[tuple[str, int, bytes]] = [
        (d, 0o040755, b"")
        for d in ("bin", "dev", "proc", "sys", "tmp", "etc", "etc/acpi", "etc/acpi/PWRF")
    ]
    entries.append(("lib", 0o040755, b""))
    entries.append(("lib/modules", 0o040755, b""))
    entries.append(("bin/busybox", 0o100755, busybox))
    entries.extend((f"lib/modules/{m}.ko", 0o100644, modules[m]) for m in GUEST_MODULES)
    entries.append(("etc/acpid.conf", 0o100644, b"PWRF PWRF/00000080\n"))
    entries.append(("etc/acpi/PWRF/00000080", 0o100755, ACPI_POWER_SCRIPT.encode()))
    entries.append(("init", 0o100755, render_init(GUEST_MODULES).encode()))
    buf = io.BytesIO()
    for ino, (name, mode, data) in enumerate(entries, start=1):
        buf.write(_cpio_entry(name, mode, data, ino=ino))
    buf.write(_cpio_entry("TRAILER!!!", 0, b"", ino=0))
    return gzip.compress(buf.getvalue(), compresslevel=6, mtime=0)


def _cpio_entry(name: str, mode: int, data: bytes, *, ino: int) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    header = b"070701" + b"".join(f"{f:08X}".encode() for f in fields)
    head = header + encoded
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)


def remove_demo_image(out_dir: Path) -> None:
    """Delete a demo image build (downloads included)."""
    shutil.rmtree(out_dir, ignore_errors=True)
