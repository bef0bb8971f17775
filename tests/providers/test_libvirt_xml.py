"""Fast tests of the libvirt driver's XML, metadata/tags, config and acceleration choice.

No daemon needed; the ``test:///default`` parts run when libvirt-python is importable.
"""

from __future__ import annotations

import importlib.util
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from pydantic import ValidationError

from hotdesk.domain.names import TAG_BROKER, TAG_DESKTOP, TAG_POOL
from hotdesk.providers.base import InstanceStatus, Provider
from hotdesk.providers.libvirt import LibvirtConfig, LibvirtProvider
from hotdesk.providers.libvirt.domain_xml import (
    NS_URI,
    DesktopMetadata,
    DomainSpec,
    build_domain_xml,
    disk_paths,
    guest_cmdline,
    metadata_element,
    parse_metadata,
    vnc_endpoint,
)

HAVE_LIBVIRT = importlib.util.find_spec("libvirt") is not None
needs_libvirt = pytest.mark.skipif(not HAVE_LIBVIRT, reason="libvirt-python is not installed")

TAGS = {TAG_BROKER: "broker-1", TAG_POOL: "pool-1", TAG_DESKTOP: "desk-1"}


def _spec(**changes: Any) -> DomainSpec:
    base: dict[str, Any] = {
        "name": "desk-1",
        "vcpus": 2,
        "memory_mib": 160,
        "disk_path": "/var/lib/hotdesk/datastores/ds1/desk-1.qcow2",
        "accel": "tcg",
        "metadata": DesktopMetadata(
            tags=dict(TAGS),
            display_name="Alice's desk",
            ready_marker="HOTDESK-READY",
            datastore="ds1",
            base_image="/var/lib/hotdesk/datastores/ds1/hotdesk-base-r1.qcow2",
            console_log="/var/lib/hotdesk/console/desk-1.log",
        ),
        "console_log": "/var/lib/hotdesk/console/desk-1.log",
        "kernel": "/images/vmlinux",
        "initrd": "/images/initrd.img",
        "cmdline": "console=ttyS0 hotdesk.id=desk-1",
    }
    base.update(changes)
    return DomainSpec(**base)


def _xml(**changes: Any) -> ET.Element:
    return ET.fromstring(build_domain_xml(_spec(**changes)))


def test_tcg_domain_has_type_qemu_and_a_tb_cache() -> None:
    dom = _xml()
    assert dom.get("type") == "qemu"
    assert dom.findtext("features/tcg/tb-cache") == "32"
    assert dom.find("features/tcg/tb-cache").get("unit") == "MiB"  # type: ignore[union-attr]
    assert dom.find("cpu") is None
    assert dom.findtext("vcpu") == "2"
    assert dom.findtext("memory") == "160" and dom.find("memory").get("unit") == "MiB"  # type: ignore[union-attr]
    assert dom.findtext("name") == "desk-1"
    assert dom.findtext("title") == "Alice's desk"


def test_kvm_domain_passes_the_host_cpu_through() -> None:
    dom = _xml(accel="kvm")
    assert dom.get("type") == "kvm"
    assert dom.find("features/tcg") is None
    assert dom.find("cpu").get("mode") == "host-passthrough"  # type: ignore[union-attr]


def test_direct_kernel_boot_and_disk_boot() -> None:
    dom = _xml()
    assert dom.findtext("os/kernel") == "/images/vmlinux"
    assert dom.findtext("os/initrd") == "/images/initrd.img"
    assert dom.findtext("os/cmdline") == "console=ttyS0 hotdesk.id=desk-1"
    assert dom.find("os/boot") is None
    plain = _xml(kernel=None, initrd=None, cmdline=None)
    assert plain.find("os/kernel") is None
    assert plain.find("os/boot").get("dev") == "hd"  # type: ignore[union-attr]


def test_devices_disk_console_graphics_and_boot_speedups() -> None:
    dom = _xml()
    disk = dom.find("devices/disk")
    assert disk is not None
    assert disk.find("driver").get("type") == "qcow2"  # type: ignore[union-attr]
    assert disk.find("target").attrib == {"dev": "vda", "bus": "virtio"}  # type: ignore[union-attr]
    serial = dom.find("devices/serial")
    assert serial is not None and serial.get("type") == "file"
    assert serial.find("source").attrib == {  # type: ignore[union-attr]
        "path": "/var/lib/hotdesk/console/desk-1.log",
        "append": "on",
    }
    graphics = dom.find("devices/graphics")
    assert graphics is not None
    assert graphics.attrib == {
        "type": "vnc",
        "port": "-1",
        "autoport": "yes",
        "listen": "127.0.0.1",
    }
    assert dom.find("devices/controller[@type='usb']").get("model") == "none"  # type: ignore[union-attr]
    assert dom.find("devices/memballoon").get("model") == "none"  # type: ignore[union-attr]
    assert dom.find("devices/interface") is None
    assert disk_paths(build_domain_xml(_spec())) == [_spec().disk_path]


def test_user_and_named_networks() -> None:
    dom = _xml(networks=("user", "lab-net"))
    nics = dom.findall("devices/interface")
    assert [n.get("type") for n in nics] == ["user", "network"]
    assert nics[1].find("source").get("network") == "lab-net"  # type: ignore[union-attr]
    assert all(n.find("model").get("type") == "virtio" for n in nics)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "tags",
    [
        TAGS,
        {**TAGS, "odd": "a&b <c> \"d\" 'e'", "unicode": "bureau-€-東京", "empty": ""},
        {**TAGS, "spaces": "  two  spaces  ", "newline": "line1\nline2"},
    ],
)
def test_tags_round_trip_through_domain_xml(tags: dict[str, str]) -> None:
    meta = DesktopMetadata(tags=tags, display_name="D <1>", ready_marker="READY")
    xml = build_domain_xml(_spec(metadata=meta))
    assert parse_metadata(xml) == meta


def test_metadata_as_libvirt_returns_it_without_namespace() -> None:
    bare = (
        '<desktop>\n  <display-name value="x"/>\n  <tag name="hotdesk-broker" value="b"/>\n'
        '  <ready-marker value="R"/>\n  <console-log value="/l"/>\n</desktop>'
    )
    meta = parse_metadata(bare)
    assert meta == DesktopMetadata(
        tags={"hotdesk-broker": "b"}, display_name="x", ready_marker="R", console_log="/l"
    )
    namespaced = ET.tostring(metadata_element(meta), encoding="unicode")
    assert NS_URI in namespaced
    assert parse_metadata(namespaced) == meta


def test_foreign_domains_have_no_hotdesk_metadata() -> None:
    assert parse_metadata("<domain type='kvm'><name>x</name></domain>") is None
    other = "<domain><metadata><app xmlns='urn:other'/></metadata></domain>"
    assert parse_metadata(other) is None
    assert parse_metadata("<desktop xmlns='urn:other'/>") is None


def test_vnc_endpoint_only_when_a_port_is_assigned() -> None:
    assert vnc_endpoint(build_domain_xml(_spec())) is None  # autoport, not running
    running = (
        "<domain><devices><graphics type='vnc' port='5901' listen='127.0.0.1'/></devices></domain>"
    )
    assert vnc_endpoint(running) == ("127.0.0.1", 5901)
    assert vnc_endpoint("<domain><devices/></domain>") is None


def test_guest_cmdline_carries_a_safe_name() -> None:
    line = guest_cmdline("console=ttyS0", name="desk-1", display_name="Bob's desk #2 / é")
    assert line.startswith("console=ttyS0 hotdesk.id=desk-1 hotdesk.name=")
    assert " " not in line.split("hotdesk.name=", 1)[1]
    assert "Bob%27s%20desk%20%232%20%2F%20%C3%A9" in line


def test_config_defaults_and_validation() -> None:
    cfg = LibvirtConfig()
    assert cfg.uris == ["qemu:///system"] and cfg.accel == "auto"
    assert cfg.datastores == ["hotdesk"] and cfg.networks == ["user"]
    assert str(cfg.datastore_dir("hotdesk")) == "/var/lib/hotdesk/datastores/hotdesk"
    for bad in (
        {"uris": []},
        {"uris": ["qemu:///system", "qemu:///system"]},
        {"uris": ["not-a-uri"]},
        {"datastores": ["bad/name"]},
        {"accel": "hvf"},
        {"unknown": 1},
    ):
        with pytest.raises(ValidationError):
            LibvirtConfig.model_validate(bad)


def test_provider_class_follows_the_contract() -> None:
    assert LibvirtProvider.kind == "libvirt"
    assert LibvirtProvider.config_model is LibvirtConfig
    assert isinstance(LibvirtProvider(LibvirtConfig()), Provider)


class _FakeConn:
    def __init__(self, *, kvm: bool, cpu_features: list[str]) -> None:
        self.kvm = kvm
        self.features = cpu_features

    def getDomainCapabilities(self, *args: Any) -> str:
        import libvirt

        if args[3] == "kvm" and not self.kvm:
            raise libvirt.libvirtError("no kvm")
        return "<domainCapabilities/>"

    def getCapabilities(self) -> str:
        feats = "".join(f"<feature name='{f}'/>" for f in self.features)
        return f"<capabilities><host><cpu><arch>x86_64</arch>{feats}</cpu></host></capabilities>"

    def baselineCPU(self, cpus: list[str], flags: int) -> str:
        return cpus[0]


@needs_libvirt
@pytest.mark.parametrize(
    ("mode", "kvm", "features", "expected"),
    [
        ("auto", True, ["vmx", "sse4.2"], "kvm"),
        ("auto", True, ["svm"], "kvm"),
        ("auto", True, ["sse4.2", "hypervisor"], "tcg"),  # software KVM: /dev/kvm, no vmx/svm
        ("auto", False, ["vmx"], "tcg"),
        ("tcg", True, ["vmx"], "tcg"),
        ("kvm", False, [], "kvm"),
    ],
)
def test_accel_choice(mode: Any, kvm: bool, features: list[str], expected: str) -> None:
    from hotdesk.providers.libvirt.accel import choose_accel

    conn = _FakeConn(kvm=kvm, cpu_features=features)
    assert choose_accel(conn, mode, local=False).accel == expected


@needs_libvirt
def test_domains_on_the_test_driver_list_with_their_tags() -> None:
    import libvirt

    from hotdesk.providers.libvirt.connections import Hosts
    from hotdesk.providers.libvirt.instances import find, list_hotdesk, to_instance

    uri = "test:///default"
    hosts = Hosts([uri], workers=1)
    run = uuid.uuid4().hex[:8]
    ours = f"hd-{run}"
    tags = {**TAGS, TAG_DESKTOP: ours}
    conn = hosts.conn(uri)
    meta = DesktopMetadata(tags=tags, display_name="T", datastore="ds1")
    dom = conn.defineXML(build_domain_xml(_spec(name=ours, metadata=meta)))
    foreign = conn.defineXML(
        f"<domain type='test'><name>x-{run}</name><memory>1024</memory>"
        "<os><type>hvm</type></os></domain>"
    )
    try:
        cfg = LibvirtConfig(uris=[uri])
        listed = {f.dom.name(): f for f in list_hotdesk(hosts, uri)}
        assert ours in listed and f"x-{run}" not in listed
        inst = to_instance(cfg, listed[ours])
        assert inst.tags == tags and inst.status is InstanceStatus.STOPPED and not inst.ready
        assert inst.ref.host == uri and inst.ref.platform_id == dom.UUIDString()
        dom.create()
        found = find(hosts, ours)
        assert found is not None
        running = to_instance(cfg, found)
        assert running.status is InstanceStatus.RUNNING and running.ready  # no marker
        dom.suspend()
        assert to_instance(cfg, found).status is InstanceStatus.PAUSED
        assert find(hosts, f"missing-{run}") is None
    finally:
        for d in (dom, foreign):
            if d.isActive():
                d.destroy()
            d.undefine()
        hosts.close_connections()
        hosts.shutdown()
    assert libvirt.getVersion() > 0
