"""Choose hardware acceleration (KVM) or emulation (TCG) per host, at run time.

``/dev/kvm`` existing is not enough: a software KVM (e.g. ``kvm_pvm`` on a CPU without VT-x/AMD-V)
accepts ``type='kvm'`` domains that then run ~100x slower than TCG and stop with "emulation
failure".  KVM is used only when libvirt offers a ``kvm`` domain type *and* the host CPU has
``vmx`` or ``svm``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hotdesk.providers.libvirt.connections import libvirt_module
from hotdesk.providers.libvirt.domain_xml import Accel

AccelMode = Literal["auto", "kvm", "tcg"]
_HOST_CPU = re.compile(r"<host>.*?(<cpu>.*?</cpu>)", re.S)
_VIRT_FLAGS = re.compile(r"\b(vmx|svm)\b")


@dataclass(frozen=True)
class AccelChoice:
    """The acceleration used on one host and why."""

    accel: Accel
    reason: str


def choose_accel(conn: Any, mode: AccelMode, *, local: bool) -> AccelChoice:
    """KVM or TCG for the host behind ``conn`` (blocking; ``mode`` is the configured wish)."""
    if mode == "tcg":
        return AccelChoice("tcg", "configured accel: tcg")
    if mode == "kvm":
        return AccelChoice("kvm", "configured accel: kvm")
    if not kvm_domain_type(conn):
        return AccelChoice("tcg", "libvirt offers no kvm domain type on this host")
    if not host_cpu_has_virt(conn, local=local):
        return AccelChoice("tcg", "/dev/kvm is present but the CPU has no vmx/svm (software KVM)")
    return AccelChoice("kvm", "kvm domain type available and the CPU has vmx/svm")


def kvm_domain_type(conn: Any) -> bool:
    """Whether libvirt can run ``type='kvm'`` x86_64 domains on this host."""
    lv = libvirt_module()
    try:
        conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
    except lv.libvirtError:
        return False
    return True


def host_cpu_has_virt(conn: Any, *, local: bool) -> bool:
    """Whether the host CPU has hardware virtualisation (vmx/svm)."""
    if local:
        try:
            return _VIRT_FLAGS.search(Path("/proc/cpuinfo").read_text()) is not None
        except OSError:
            pass
    lv = libvirt_module()
    match = _HOST_CPU.search(conn.getCapabilities())
    if match is None:
        return False
    try:
        expanded = conn.baselineCPU([match.group(1)], lv.VIR_CONNECT_BASELINE_CPU_EXPAND_FEATURES)
    except lv.libvirtError:
        expanded = match.group(1)
    return re.search(r"name=['\"](vmx|svm)['\"]", expanded or "") is not None
