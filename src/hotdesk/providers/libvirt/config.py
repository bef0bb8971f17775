"""Settings of the libvirt/QEMU driver."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

USER_NETWORK = "user"  # QEMU user-mode networking (SLIRP): no host set-up needed
_POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class LibvirtConfig(BaseModel):
    """Where the driver runs desktops and how it builds them.

    ``datastores`` are libvirt storage pools by name; a missing one is created as a ``dir`` pool
    under ``storage_root/<name>``.  The first datastore is the default.  ``networks`` lists the
    networks templates may use: ``user`` (QEMU user-mode networking) or libvirt network names.
    """

    model_config = ConfigDict(extra="forbid")

    uris: list[str] = Field(default_factory=lambda: ["qemu:///system"], min_length=1)
    datastores: list[str] = Field(default_factory=lambda: ["hotdesk"], min_length=1)
    storage_root: Path = Path("/var/lib/hotdesk/datastores")
    networks: list[str] = Field(default_factory=lambda: [USER_NETWORK])
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    console_log_dir: Path = Path("/var/lib/hotdesk/console")
    vnc_listen: str = "127.0.0.1"
    machine: str = Field(default="pc", description="QEMU machine type, e.g. pc or q35")
    tb_cache_mib: int = Field(default=32, ge=0, description="TCG translation cache; 0 = default")
    shutdown_timeout: float = Field(
        default=10.0,
        ge=0,
        description="seconds restart (and off unless hard_off) waits for an ACPI shutdown "
        "before pulling the plug",
    )
    hard_off: bool = Field(
        default=True, description="power off without asking the guest (like a power switch)"
    )
    workers: int = Field(default=4, ge=1, le=32, description="threads for blocking libvirt calls")
    connect_timeout: float = Field(default=10.0, gt=0)

    @field_validator("datastores")
    @classmethod
    def _check_datastores(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _POOL_NAME.match(name):
                raise ValueError(f"invalid datastore (storage pool) name {name!r}")
        if len(set(value)) != len(value):
            raise ValueError("datastores must be unique")
        return value

    @field_validator("uris")
    @classmethod
    def _check_uris(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("uris must be unique")
        for uri in value:
            if "://" not in uri:
                raise ValueError(f"not a libvirt URI: {uri!r}")
        return value

    def datastore_dir(self, name: str) -> Path:
        """Directory of a driver-created ``dir`` storage pool."""
        return self.storage_root / name
