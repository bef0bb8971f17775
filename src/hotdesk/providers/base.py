"""The driver contract every platform implements (ARCHITECTURE.md, "The driver contract").

Rules for drivers:
- ``create_desktop`` and ``delete_desktop`` are idempotent: creating a name that already exists
  with the same ``hotdesk-desktop`` tag returns that instance; deleting a missing VM succeeds.
- Everything a driver creates carries ``CreateRequest.tags`` and ``list_desktops`` returns them
  unchanged, so the leak sweep can find VMs the database does not know.
- Errors are typed (``hotdesk.domain.errors``): ``TemporaryError`` (retry after ``delay``),
  ``QuotaExceeded``, ``CapacityExceeded``, ``PermanentError``.
- Blocking SDKs run in a bounded thread pool inside the driver; methods are coroutines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel


class InstanceStatus(StrEnum):
    """Power/provisioning status of a VM as the platform reports it."""

    BUILDING = "building"
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    ERROR = "error"
    DELETING = "deleting"


class PowerAction(StrEnum):
    """O1 power operations."""

    ON = "on"
    OFF = "off"
    RESTART = "restart"
    FORCE_RESTART = "force-restart"


@dataclass(frozen=True)
class InstanceRef:
    """How a driver finds a VM again: its platform id (when known) and its unique name."""

    name: str
    platform_id: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class Instance:
    """A VM as the platform reports it."""

    ref: InstanceRef
    status: InstanceStatus
    tags: dict[str, str]
    ready: bool = False  # the platform (or its guest agent channel) says the guest is up
    datastore: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class TemplateSpec:
    """What a desktop is made of, from the template revision (platform-neutral)."""

    image: str
    vcpus: int = 1
    memory_mib: int = 1024
    disk_gib: int | None = None
    networks: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    has_agent: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CreateRequest:
    """Create one desktop VM."""

    name: str
    display_name: str
    tags: dict[str, str]
    template: TemplateSpec
    target: str | None = None
    project: str | None = None
    datastore: str | None = None
    image_ref: str | None = None  # a published base image, when the driver publishes
    agent: AgentBootstrap | None = None  # how the guest agent reaches the broker (G1)


@dataclass(frozen=True)
class AgentBootstrap:
    """What a guest agent needs: the broker URL, the desktop id and its credential.

    Drivers hand it to the guest (kernel command line, cloud-init, SMBIOS...).
    """

    url: str
    desktop_id: str
    token: str


@dataclass(frozen=True)
class DeleteProgress:
    """Result of a delete call: ``done`` once nothing of the VM is left on the platform."""

    done: bool
    detail: str = ""


@dataclass(frozen=True)
class ConsoleEndpoint:
    """Where the desktop's console can be reached."""

    protocol: str  # "vnc" | "spice" | "rdp" | "url"
    host: str | None = None
    port: int | None = None
    url: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class ProviderHealth:
    """Result of ``check``: reachable or not, with details (e.g. the acceleration in use)."""

    ok: bool
    detail: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishRequest:
    """Publish a template revision's image once per datastore (T3)."""

    image: str
    revision_id: str
    datastore: str | None
    tags: dict[str, str]


@dataclass(frozen=True)
class PublishedImage:
    """A published, read-only base image that desktops are cloned from."""

    ref: str
    datastore: str | None
    size_bytes: int | None = None


@runtime_checkable
class Provider(Protocol):
    """A platform driver. ``kind`` names it; ``config_model`` validates its settings."""

    kind: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]

    async def check(self) -> ProviderHealth:
        """Tell whether the platform answers, and what it offers (acceleration, version...)."""
        ...

    async def create_desktop(self, req: CreateRequest) -> Instance:
        """Create (or find, if it already exists with the same tags) a VM; return once accepted."""
        ...

    async def get_desktop(self, ref: InstanceRef) -> Instance | None:
        """Return the VM, or ``None`` if the platform does not have it."""
        ...

    async def list_desktops(self, *, owner: str) -> list[Instance]:
        """Every VM tagged with broker id ``owner``, tags included."""
        ...

    async def delete_desktop(self, ref: InstanceRef) -> DeleteProgress:
        """Destroy the VM and its disks; deleting a missing VM is success."""
        ...

    async def power(self, ref: InstanceRef, action: PowerAction) -> None:
        """Power on, power off, restart or force-restart the VM."""
        ...

    async def console(self, ref: InstanceRef) -> ConsoleEndpoint:
        """Where the VM's console is served."""
        ...

    async def console_log(self, ref: InstanceRef) -> str:
        """The VM's console (serial) log text, for O1 log extraction."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...


class SupportsPublish(Protocol):
    """Optional part of the contract: drivers that publish base images (T3)."""

    async def publish_image(self, req: PublishRequest) -> PublishedImage:
        """Prepare the image once on a datastore; idempotent."""
        ...

    async def unpublish_image(self, image: PublishedImage) -> None:
        """Remove a published base no desktop uses any more; idempotent."""
        ...
