"""``/providers``: platform instances (kind + connection settings) and their health."""

from __future__ import annotations

from fastapi import APIRouter

from hotdesk.api.deps import AdminActor, Ctx
from hotdesk.api.routers.common import ensure_same_name
from hotdesk.api.schemas.providers import (
    ProviderCreate,
    ProviderRead,
    ProviderUpdate,
)
from hotdesk.services import catalog

router = APIRouter(tags=["providers"])


@router.get("/providers")
def list_providers(ctx: Ctx, actor: AdminActor) -> list[ProviderRead]:
    """Providers of the tenant, with their last health check."""
    return [ProviderRead.model_validate(p) for p in catalog.list_providers(ctx, actor)]


@router.post("/providers", status_code=201)
def create_provider(body: ProviderCreate, ctx: Ctx, actor: AdminActor) -> ProviderRead:
    """Create a provider (409 if the name is taken); the driver validates ``config``."""
    row, _ = catalog.save_provider(
        ctx,
        actor,
        body.name,
        kind=body.kind,
        config=body.config,
        max_concurrent_provisioning=body.max_concurrent_provisioning,
        create=True,
    )
    return ProviderRead.model_validate(row)


@router.get("/providers/{name}")
def get_provider(name: str, ctx: Ctx, actor: AdminActor) -> ProviderRead:
    """One provider."""
    return ProviderRead.model_validate(catalog.get_provider(ctx, actor, name))


@router.put("/providers/{name}")
def update_provider(name: str, body: ProviderUpdate, ctx: Ctx, actor: AdminActor) -> ProviderRead:
    """Update a provider (404 if missing); fields left out keep their value."""
    ensure_same_name(name, body.name)
    current = catalog.get_provider(ctx, actor, name)
    row, _ = catalog.save_provider(
        ctx,
        actor,
        name,
        kind=body.kind if body.kind is not None else current.kind,
        config=body.config if body.config is not None else current.config,
        max_concurrent_provisioning=(
            body.max_concurrent_provisioning
            if body.max_concurrent_provisioning is not None
            else current.max_concurrent_provisioning
        ),
        create=False,
    )
    return ProviderRead.model_validate(row)


@router.delete("/providers/{name}", status_code=204)
def delete_provider(name: str, ctx: Ctx, actor: AdminActor) -> None:
    """Delete a provider no pool uses (409 otherwise)."""
    catalog.delete_provider(ctx, actor, name)
