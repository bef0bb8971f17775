"""Domain XML for a desktop, and reading hotdesk's metadata (tags...) back from domain XML.

Pure functions over strings: no libvirt import, so they are unit-tested without a daemon.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

from hotdesk.providers.base import AgentBootstrap

NS_URI = "https://hotdesk.dev/xmlns/libvirt/desktop/1"
NS_PREFIX = "hotdesk"
ET.register_namespace(NS_PREFIX, NS_URI)

Accel = Literal["kvm", "tcg"]


@dataclass(frozen=True)
class DesktopMetadata:
    """What hotdesk stores in a domain's ``<metadata>`` and reads back."""

    tags: dict[str, str]
    display_name: str = ""
    ready_marker: str | None = None
    datastore: str | None = None
    base_image: str | None = None
    console_log: str | None = None


@dataclass(frozen=True)
class DomainSpec:
    """Everything needed to write one desktop's domain XML."""

    name: str
    vcpus: int
    memory_mib: int
    disk_path: str
    accel: Accel
    metadata: DesktopMetadata
    console_log: str
    machine: str = "pc"
    vnc_listen: str = "127.0.0.1"
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    networks: tuple[str, ...] = ()
    tb_cache_mib: int = 32
    user_network: str = "user"
    oem_strings: tuple[str, ...] = ()
    extra_devices: tuple[str, ...] = field(default=())


def build_domain_xml(spec: DomainSpec) -> str:
    """The libvirt domain XML of a desktop (TCG ``type='qemu'`` or ``type='kvm'``)."""
    dom = ET.Element("domain", type="kvm" if spec.accel == "kvm" else "qemu")
    ET.SubElement(dom, "name").text = spec.name
    title = " ".join(spec.metadata.display_name.split())
    if title:
        ET.SubElement(dom, "title").text = title
    meta = ET.SubElement(dom, "metadata")
    meta.append(metadata_element(spec.metadata))
    ET.SubElement(dom, "memory", unit="MiB").text = str(spec.memory_mib)
    ET.SubElement(dom, "vcpu", placement="static").text = str(spec.vcpus)
    _add_os(dom, spec)
    if spec.oem_strings:
        sysinfo = ET.SubElement(dom, "sysinfo", type="smbios")
        oem = ET.SubElement(sysinfo, "oemStrings")
        for entry in spec.oem_strings:
            ET.SubElement(oem, "entry").text = entry
    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    if spec.accel == "tcg" and spec.tb_cache_mib > 0:
        tcg = ET.SubElement(features, "tcg")
        ET.SubElement(tcg, "tb-cache", unit="MiB").text = str(spec.tb_cache_mib)
    if spec.accel == "kvm":
        ET.SubElement(dom, "cpu", mode="host-passthrough")
    ET.SubElement(dom, "clock", offset="utc")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"
    _add_devices(dom, spec)
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")


def _add_os(dom: ET.Element, spec: DomainSpec) -> None:
    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine=spec.machine).text = "hvm"
    if spec.kernel:
        ET.SubElement(os_el, "kernel").text = spec.kernel
        if spec.initrd:
            ET.SubElement(os_el, "initrd").text = spec.initrd
        if spec.cmdline:
            ET.SubElement(os_el, "cmdline").text = spec.cmdline
    else:
        ET.SubElement(os_el, "boot", dev="hd")
    if spec.oem_strings:
        ET.SubElement(os_el, "smbios", mode="sysinfo")


def _add_devices(dom: ET.Element, spec: DomainSpec) -> None:
    devices = ET.SubElement(dom, "devices")
    disk = ET.SubElement(devices, "disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="qcow2")
    ET.SubElement(disk, "source", file=spec.disk_path)
    ET.SubElement(disk, "target", dev="vda", bus="virtio")
    for network in spec.networks:
        if network == spec.user_network:
            nic = ET.SubElement(devices, "interface", type="user")
        else:
            nic = ET.SubElement(devices, "interface", type="network")
            ET.SubElement(nic, "source", network=network)
        ET.SubElement(nic, "model", type="virtio")
    serial = ET.SubElement(devices, "serial", type="file")
    ET.SubElement(serial, "source", path=spec.console_log, append="on")
    ET.SubElement(serial, "target", port="0")
    graphics = ET.SubElement(
        devices, "graphics", type="vnc", port="-1", autoport="yes", listen=spec.vnc_listen
    )
    ET.SubElement(graphics, "listen", type="address", address=spec.vnc_listen)
    video = ET.SubElement(devices, "video")
    ET.SubElement(video, "model", type="vga", vram="16384", heads="1")
    ET.SubElement(devices, "controller", type="usb", model="none")
    ET.SubElement(devices, "memballoon", model="none")
    for extra in spec.extra_devices:
        devices.append(ET.fromstring(extra))


def metadata_element(meta: DesktopMetadata) -> ET.Element:
    """The ``<hotdesk:desktop>`` element stored in the domain's ``<metadata>``."""
    root = ET.Element(f"{{{NS_URI}}}desktop")
    ET.SubElement(root, f"{{{NS_URI}}}display-name", value=meta.display_name)
    for key, tag_value in sorted(meta.tags.items()):
        ET.SubElement(root, f"{{{NS_URI}}}tag", name=key, value=tag_value)
    optional = {
        "ready-marker": meta.ready_marker,
        "datastore": meta.datastore,
        "base-image": meta.base_image,
        "console-log": meta.console_log,
    }
    for name, value in optional.items():
        if value is not None:
            ET.SubElement(root, f"{{{NS_URI}}}{name}", value=value)
    return root


def parse_metadata(domain_xml: str) -> DesktopMetadata | None:
    """hotdesk's metadata from a domain's XML, or ``None`` if hotdesk did not make it.

    Accepts the whole domain XML or the bare ``<desktop>`` element that
    ``virDomainGetMetadata`` returns (without its namespace).
    """
    root = ET.fromstring(domain_xml)
    found = root.find(f"metadata/{{{NS_URI}}}desktop")
    if found is None and _local(root.tag) == "desktop" and root.tag in ("desktop", _q("desktop")):
        found = root
    if found is None:
        return None
    tags: dict[str, str] = {}
    values: dict[str, str] = {}
    for el in found:
        name = _local(el.tag)
        if name == "tag":
            tags[el.get("name", "")] = el.get("value", "")
        elif el.get("value") is not None:
            values[name] = el.get("value", "")
    return DesktopMetadata(
        tags=tags,
        display_name=values.get("display-name", ""),
        ready_marker=values.get("ready-marker"),
        datastore=values.get("datastore"),
        base_image=values.get("base-image"),
        console_log=values.get("console-log"),
    )


def _q(name: str) -> str:
    return f"{{{NS_URI}}}{name}"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def vnc_endpoint(domain_xml: str) -> tuple[str, int] | None:
    """Listen address and port of the running domain's VNC server, if it has one."""
    root = ET.fromstring(domain_xml)
    for graphics in root.findall("devices/graphics"):
        if graphics.get("type") != "vnc":
            continue
        port = int(graphics.get("port", "-1"))
        if port <= 0:
            return None
        return graphics.get("listen") or "127.0.0.1", port
    return None


def disk_paths(domain_xml: str) -> list[str]:
    """Paths of the domain's file-backed disks."""
    root = ET.fromstring(domain_xml)
    paths = []
    for disk in root.findall("devices/disk"):
        source = disk.find("source")
        if source is not None and source.get("file"):
            paths.append(source.get("file", ""))
    return paths


def guest_cmdline(
    base: str, *, name: str, display_name: str, agent: AgentBootstrap | None = None
) -> str:
    """The template's kernel command line plus the desktop's identity for the guest to show,
    and the guest agent's bootstrap (``hotdesk.agent/desktop/token=``) when there is one."""
    label = quote(display_name[:64], safe="")
    line = f"{base} hotdesk.id={quote(name, safe='')} hotdesk.name={label}"
    if agent is not None:
        line += " " + " ".join(agent_parameters(agent))
    return line.strip()


def agent_parameters(agent: AgentBootstrap) -> tuple[str, ...]:
    """``hotdesk.agent=<url>``, ``hotdesk.desktop=<id>`` and ``hotdesk.token=<credential>``.

    The same strings go on the kernel command line (direct boot) and into the SMBIOS OEM
    strings (any boot).  Values containing whitespace or quotes are refused (``ValueError``):
    they would split or break the command line.
    """
    values = {"agent": agent.url, "desktop": agent.desktop_id, "token": agent.token}
    for key, value in values.items():
        if not value or any(c.isspace() or c in "\"'\\" for c in value):
            raise ValueError(f"agent bootstrap {key} {value!r} is empty or has spaces/quotes")
    return tuple(f"hotdesk.{key}={value}" for key, value in values.items())


def desktop_networks(
    template_networks: tuple[str, ...], *, agent: bool, allowed: tuple[str, ...], user: str
) -> tuple[str, ...]:
    """The NICs of a desktop: the template's networks; with a guest agent and no network in
    the template, QEMU user networking (when allowed) so the agent can reach the broker."""
    if template_networks or not agent or user not in allowed:
        return tuple(template_networks)
    return (user,)
