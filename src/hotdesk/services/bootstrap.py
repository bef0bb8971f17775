"""First start: the broker id, the default tenant, a bootstrap admin and the demo pool."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from hotdesk.db.engine import Database
from hotdesk.db.models import MetaRow, TenantRow, UserRow
from hotdesk.db.types import new_id
from hotdesk.domain.pools import PoolSpec
from hotdesk.services import catalog, pools
from hotdesk.services.auth import hash_password
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.pools import EntitlementLine

DEFAULT_TENANT = "default"


def ensure_broker_id(db: Database) -> str:
    """The installation's broker id (put in every VM's tags), created once."""
    with db.write() as session:
        row = session.get(MetaRow, "broker_id")
        if row is None:
            row = MetaRow(key="broker_id", value=f"hd-{new_id()[:12]}")
            session.add(row)
        return row.value


@dataclass(frozen=True)
class Bootstrap:
    """What first start created; ``admin_password`` is shown once and never stored in clear."""

    tenant_id: str
    admin_username: str
    admin_password: str | None


def ensure_default_tenant(ctx: BrokerContext) -> Bootstrap:
    """Create the default tenant and its first admin (with a random password) if missing."""
    with ctx.db.write() as session:
        tenant = session.scalar(select(TenantRow).where(TenantRow.name == DEFAULT_TENANT))
        if tenant is None:
            tenant = TenantRow(name=DEFAULT_TENANT, created_at=ctx.now())
            session.add(tenant)
            session.flush()
        admin = session.scalar(
            select(UserRow).where(UserRow.tenant_id == tenant.id, UserRow.role == "tenant-admin")
        )
        password = None
        if admin is None:
            password = secrets.token_urlsafe(12)
            admin = UserRow(
                tenant_id=tenant.id,
                username="admin",
                role="tenant-admin",
                display_name="Administrator",
                password_hash=hash_password(password),
                created_at=ctx.now(),
            )
            session.add(admin)
        return Bootstrap(
            tenant_id=tenant.id, admin_username=admin.username, admin_password=password
        )


def admin_actor(ctx: BrokerContext, tenant_id: str) -> Actor:
    """An admin of the tenant, to act on its behalf at start-up."""
    with ctx.db.read() as session:
        admin = session.scalar(
            select(UserRow).where(UserRow.tenant_id == tenant_id, UserRow.role == "tenant-admin")
        )
        assert admin is not None
        return Actor(
            tenant_id=tenant_id, user_id=admin.id, username=admin.username, role="tenant-admin"
        )


def ensure_demo_pool(
    ctx: BrokerContext,
    tenant_id: str,
    *,
    provider_kind: str = "sim",
    provider_config: dict[str, Any] | None = None,
    template_spec: dict[str, Any] | None = None,
) -> bool:
    """Create the demo provider, template and pool (entitling the admin) if there is no pool."""
    actor = admin_actor(ctx, tenant_id)
    if pools.list_pools(ctx, actor):
        return False
    name = "demo-sim" if provider_kind == "sim" else f"demo-{provider_kind}"
    config = provider_config or {"platform": "demo", "create_latency": 0.2, "boot_latency": 2.0}
    catalog.save_provider(
        ctx, actor, name, kind=provider_kind, config=config, max_concurrent_provisioning=2
    )
    catalog.save_template(
        ctx, actor, "demo", template_spec or {"image": "demo", "vcpus": 1, "memory_mib": 160}
    )
    spec = PoolSpec(
        name="demo",
        provider=name,
        template="demo",
        max_desktops=4,
        warm_desktops=2,
        retention=timedelta(minutes=2),
        name_pattern="demo-{SEQUENCE}",
        display_name_pattern="Demo desktop {SEQUENCE}",
        provision_concurrency=2,
    )
    pools.save_pool(ctx, actor, spec)
    pools.set_entitlements(ctx, actor, "demo", [EntitlementLine("user", actor.username)])
    return True
