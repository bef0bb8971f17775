"""The guest agent bootstrap in the libvirt driver's domain XML (no daemon needed).

With ``CreateRequest.agent`` set, a desktop gets ``hotdesk.agent/desktop/token=`` on its kernel
command line (direct boot) and in its SMBIOS OEM strings, and a QEMU user-networking NIC when
its template names no network, so the agent can reach the broker at 10.0.2.2.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hotdesk.domain.errors import PermanentError
from hotdesk.providers.base import AgentBootstrap, CreateRequest, TemplateSpec
from hotdesk.providers.libvirt import LibvirtConfig
from hotdesk.providers.libvirt.accel import AccelChoice
from hotdesk.providers.libvirt.connections import Hosts
from hotdesk.providers.libvirt.desktops import Desktops
from hotdesk.providers.libvirt.domain_xml import (
    DesktopMetadata,
    DomainSpec,
    agent_parameters,
    build_domain_xml,
    desktop_networks,
    guest_cmdline,
)

AGENT = AgentBootstrap(url="http://10.0.2.2:8080", desktop_id="d-42", token="0a1b2c")
URI = "qemu:///system"
DIRECT_BOOT = TemplateSpec(
    image="/images/disk.qcow2",
    memory_mib=160,
    extra={"kernel": "/images/vmlinux", "initrd": "/images/initrd.img", "cmdline": "quiet"},
)


class _Volume:
    def __init__(self, path: str) -> None:
        self._path = path

    def path(self) -> str:
        return self._path


def _desktops(tmp_path: Path, **config: Any) -> Desktops:
    cfg = LibvirtConfig(uris=[URI], console_log_dir=tmp_path, accel="tcg", **config)
    desktops = Desktops(cfg, Hosts(cfg.uris, workers=1))
    desktops._accel[URI] = AccelChoice("tcg", "forced")  # no daemon: skip detection
    return desktops


def _domain_xml(desktops: Desktops, req: CreateRequest) -> ET.Element:
    spec = desktops._domain_spec(
        req, URI, "ds1", _Volume("/ds1/desk-1.qcow2"), _Volume("/ds1/base.qcow2")
    )
    return ET.fromstring(build_domain_xml(spec))


def _request(template: TemplateSpec = DIRECT_BOOT, **changes: Any) -> CreateRequest:
    req = CreateRequest(name="desk-1", display_name="Desk 1", tags={}, template=template)
    return replace(req, **changes)


def test_agent_parameters_go_after_the_desktop_identity() -> None:
    line = guest_cmdline("console=ttyS0", name="desk-1", display_name="Alice's desk", agent=AGENT)
    assert line == (
        "console=ttyS0 hotdesk.id=desk-1 hotdesk.name=Alice%27s%20desk "
        "hotdesk.agent=http://10.0.2.2:8080 hotdesk.desktop=d-42 hotdesk.token=0a1b2c"
    )
    assert "hotdesk.agent" not in guest_cmdline("", name="desk-1", display_name="x")


@pytest.mark.parametrize(
    "bad",
    [
        replace(AGENT, url="http://host:1/a b"),
        replace(AGENT, token=""),
        replace(AGENT, desktop_id='d"1'),
    ],
)
def test_agent_values_that_would_break_the_command_line_are_refused(
    bad: AgentBootstrap, tmp_path: Path
) -> None:
    with pytest.raises(ValueError):
        agent_parameters(bad)
    with pytest.raises(PermanentError):
        _desktops(tmp_path)._validate(_request(agent=bad))


@pytest.mark.parametrize(
    ("template", "agent", "allowed", "expected"),
    [
        ((), True, ("user",), ("user",)),  # an agent needs a way out: user networking
        ((), False, ("user",), ()),  # no agent, no network: no NIC
        (("user",), False, ("user",), ("user",)),
        (("lan",), True, ("user", "lan"), ("lan",)),  # the template's own network is kept
        ((), True, ("lan",), ()),  # user networking not allowed by the provider
    ],
)
def test_desktop_networks(
    template: tuple[str, ...], agent: bool, allowed: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert desktop_networks(template, agent=agent, allowed=allowed, user="user") == expected


def test_direct_boot_domain_with_an_agent(tmp_path: Path) -> None:
    dom = _domain_xml(_desktops(tmp_path), _request(agent=AGENT))
    cmdline = dom.findtext("os/cmdline") or ""
    assert cmdline.startswith("quiet hotdesk.id=desk-1 hotdesk.name=Desk%201 ")
    assert cmdline.endswith(
        "hotdesk.agent=http://10.0.2.2:8080 hotdesk.desktop=d-42 hotdesk.token=0a1b2c"
    )
    (nic,) = dom.findall("devices/interface")
    assert nic.get("type") == "user"
    model = nic.find("model")
    assert model is not None and model.get("type") == "virtio"
    entries = [e.text for e in dom.findall("sysinfo[@type='smbios']/oemStrings/entry")]
    assert entries == [
        "hotdesk.agent=http://10.0.2.2:8080",
        "hotdesk.desktop=d-42",
        "hotdesk.token=0a1b2c",
    ]
    smbios = dom.find("os/smbios")
    assert smbios is not None and smbios.get("mode") == "sysinfo"


def test_without_an_agent_nothing_changes(tmp_path: Path) -> None:
    dom = _domain_xml(_desktops(tmp_path), _request())
    assert "hotdesk.agent" not in (dom.findtext("os/cmdline") or "")
    assert dom.find("sysinfo") is None and dom.find("os/smbios") is None
    assert dom.findall("devices/interface") == []


def test_user_network_of_the_template_without_an_agent(tmp_path: Path) -> None:
    template = replace(DIRECT_BOOT, networks=("user",))
    dom = _domain_xml(_desktops(tmp_path), _request(template))
    assert [n.get("type") for n in dom.findall("devices/interface")] == ["user"]


def test_disk_boot_gets_the_agent_through_smbios_only(tmp_path: Path) -> None:
    template = TemplateSpec(image="/images/disk.qcow2", has_agent=True)
    dom = _domain_xml(_desktops(tmp_path), _request(template, agent=AGENT))
    assert dom.find("os/cmdline") is None and dom.find("os/kernel") is None
    assert len(dom.findall("sysinfo/oemStrings/entry")) == 3
    assert [n.get("type") for n in dom.findall("devices/interface")] == ["user"]


def test_no_user_nic_when_the_provider_does_not_allow_user_networking(tmp_path: Path) -> None:
    dom = _domain_xml(_desktops(tmp_path, networks=["lan"]), _request(agent=AGENT))
    assert dom.findall("devices/interface") == []


def test_oem_strings_in_a_plain_domain_spec() -> None:
    spec = DomainSpec(
        name="d",
        vcpus=1,
        memory_mib=128,
        disk_path="/d.qcow2",
        accel="kvm",
        metadata=DesktopMetadata(tags={}),
        console_log="/d.log",
        oem_strings=("a=1",),
    )
    dom = ET.fromstring(build_domain_xml(spec))
    assert [e.text for e in dom.findall("sysinfo/oemStrings/entry")] == ["a=1"]
