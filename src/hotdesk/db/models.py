"""ORM rows. The database is the source of truth (ARCHITECTURE rule 1)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hotdesk.db.types import UTCDateTime, new_id

ID = String(32)


class Base(DeclarativeBase):
    """Declarative base of every row class."""

    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class MetaRow(Base):
    """Installation facts (the broker id used in VM tags)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class TenantRow(Base):
    """An isolation unit: every other object belongs to one."""

    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[datetime]


class OrganizationRow(Base):
    """A node of a tenant's organisation tree."""

    __tablename__ = "organizations"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    display_name: Mapped[str | None] = mapped_column(String(200))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id"))
    created_at: Mapped[datetime]


class UserRow(Base):
    """A local user with an argon2 password hash and a role."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "username"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    username: Mapped[str] = mapped_column(String(63))
    display_name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(20), default="user")
    organization_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id"))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class TokenRow(Base):
    """A bearer token (only its SHA-256 is stored)."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]


class GroupRow(Base):
    """A named set of users."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime]


class GroupMemberRow(Base):
    """Membership of a user in a group."""

    __tablename__ = "group_members"
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ProviderRow(Base):
    """One platform instance: a driver kind and its settings."""

    __tablename__ = "providers"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    max_concurrent_provisioning: Mapped[int] = mapped_column(Integer, default=10)
    health_ok: Mapped[bool | None] = mapped_column(Boolean)
    health_detail: Mapped[str | None] = mapped_column(Text)
    health_facts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    checked_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TemplateRow(Base):
    """A versioned desktop template; its revisions are immutable."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    current_revision_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime]


class TemplateRevisionRow(Base):
    """One immutable revision of a template (image, flavor, disk, networks...)."""

    __tablename__ = "template_revisions"
    __table_args__ = (UniqueConstraint("template_id", "number"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    template_id: Mapped[str] = mapped_column(ForeignKey("templates.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class PoolRow(Base):
    """A dynamic desktop pool; ``spec`` holds the full validated definition (P1)."""

    __tablename__ = "pools"
    __table_args__ = (
        Index(
            "uq_pools_live_name",
            "tenant_id",
            "name",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id"), index=True)
    template_id: Mapped[str] = mapped_column(ForeignKey("templates.id"), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    max_desktops: Mapped[int] = mapped_column(Integer)
    warm_desktops: Mapped[int] = mapped_column(Integer)
    retention_seconds: Mapped[float]
    next_sequence: Mapped[int] = mapped_column(Integer)
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    provision_failures: Mapped[int] = mapped_column(Integer, default=0)
    provision_error: Mapped[str | None] = mapped_column(Text)
    provision_backoff_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class EntitlementRow(Base):
    """C1: a user, group or organisation allowed to claim from a pool."""

    __tablename__ = "entitlements"
    __table_args__ = (UniqueConstraint("pool_id", "kind", "subject_id"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    pool_id: Mapped[str] = mapped_column(ForeignKey("pools.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(ID)
    include_suborganizations: Mapped[bool] = mapped_column(Boolean, default=False)


class DesktopRow(Base):
    """One VM of a pool, with its lifecycle state and at most one assigned user."""

    __tablename__ = "desktops"
    __table_args__ = (
        Index(
            "uq_desktops_pool_user",
            "pool_id",
            "user_id",
            unique=True,
            sqlite_where=text("user_id IS NOT NULL"),
            postgresql_where=text("user_id IS NOT NULL"),
        ),
        Index(
            "uq_desktops_provider_vm_name",
            "provider_id",
            "name",
            unique=True,
            sqlite_where=text("state <> 'deleted'"),
            postgresql_where=text("state <> 'deleted'"),
        ),
        Index("ix_desktops_pool_state", "pool_id", "state"),
        Index("ix_desktops_provider_state", "provider_id", "state"),  # provider budgets
    )
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    pool_id: Mapped[str] = mapped_column(ForeignKey("pools.id"))
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id"))
    name: Mapped[str] = mapped_column(String(63))
    display_name: Mapped[str] = mapped_column(String(200))
    sequence: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    power_state: Mapped[str | None] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    previous_user_id: Mapped[str | None] = mapped_column(ID)
    template_revision_id: Mapped[str] = mapped_column(ForeignKey("template_revisions.id"))
    platform_id: Mapped[str | None] = mapped_column(String(200))
    host: Mapped[str | None] = mapped_column(String(200))
    datastore: Mapped[str | None] = mapped_column(String(200))
    console: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    agent_secret_hash: Mapped[str | None] = mapped_column(String(64))
    agent_ready: Mapped[bool] = mapped_column(Boolean, default=False)
    agent_seen_at: Mapped[datetime | None]
    guest_user: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    state_since: Mapped[datetime]
    assigned_at: Mapped[datetime | None]
    idle_since: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)


class SessionRow(Base):
    """A user's connection to their desktop; its end starts the retention clock."""

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    desktop_id: Mapped[str] = mapped_column(ForeignKey("desktops.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    client: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class QueueEntryRow(Base):
    """A user waiting for a desktop of a full pool (C5); ``seq`` orders it (FIFO)."""

    __tablename__ = "queue_entries"
    __table_args__ = (
        Index(
            "uq_queue_waiting_user",
            "pool_id",
            "user_id",
            unique=True,
            sqlite_where=text("state = 'waiting'"),
            postgresql_where=text("state = 'waiting'"),
        ),
        Index("ix_queue_pool_state_seq", "pool_id", "state", "seq"),
    )
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    pool_id: Mapped[str] = mapped_column(ForeignKey("pools.id"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(16), default="waiting")
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    desktop_id: Mapped[str | None] = mapped_column(ID)


class EventRow(Base):
    """O2: every operation and state change, with who, when and why."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_pool", "pool_id", "id"),
        Index("ix_events_desktop", "desktop_id", "id"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str] = mapped_column(ID, index=True)
    pool_id: Mapped[str | None] = mapped_column(ID)
    desktop_id: Mapped[str | None] = mapped_column(ID)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class OperationRow(Base):
    """An admin or user operation on a desktop that the reconciler carries out (O1)."""

    __tablename__ = "operations"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ID, index=True)
    desktop_id: Mapped[str] = mapped_column(ForeignKey("desktops.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(Text)


class LeakSuspectRow(Base):
    """R4: a tagged VM unknown to the database; deleted when seen on two consecutive sweeps."""

    __tablename__ = "leak_suspects"
    provider_id: Mapped[str] = mapped_column(ID, primary_key=True)
    vm_name: Mapped[str] = mapped_column(String(200), primary_key=True)
    platform_id: Mapped[str | None] = mapped_column(String(200))
    first_seen_at: Mapped[datetime]
    last_sweep: Mapped[int] = mapped_column(Integer)


class PublishedImageRow(Base):
    """T3: a template revision's image published once on one datastore of one provider."""

    __tablename__ = "published_images"
    __table_args__ = (UniqueConstraint("provider_id", "revision_id", "datastore"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id"), index=True)
    revision_id: Mapped[str] = mapped_column(ForeignKey("template_revisions.id"))
    datastore: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16))  # publishing | ready | failed
    ref: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# --- console tickets (portal/console issue) ---------------------------------------------


class ConsoleTicketRow(Base):
    """A single-use, short-lived ticket that opens one desktop's console websocket.

    Only the SHA-256 of the ticket is stored; ``used_at`` is set when it is redeemed, so a
    ticket works once, on any broker process sharing the database.
    """

    __tablename__ = "console_tickets"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    desktop_id: Mapped[str] = mapped_column(ForeignKey("desktops.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    as_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


# --- several broker processes (scale-out issue) -----------------------------------------


class BrokerInstanceRow(Base):
    """One running broker process; its heartbeat says it is alive (leases, fair share)."""

    __tablename__ = "broker_instances"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime] = mapped_column(index=True)


class LeaseRow(Base):
    """Who does a piece of reconciler work: ``pool:<id>`` or a singleton loop (``upkeep``).

    A lease is valid until ``expires_at`` and renewed by its holder's heartbeat; the
    ``token`` changes whenever another process takes it, so a result computed under a lost
    lease is recognised and thrown away.
    """

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(100), index=True)
    token: Mapped[str | None] = mapped_column(String(32))
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime | None]
