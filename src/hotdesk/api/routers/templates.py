"""``/templates``: what desktops are made of, versioned (each change is a new revision)."""

from __future__ import annotations

from fastapi import APIRouter

from hotdesk.api.deps import AdminActor, Ctx
from hotdesk.api.routers.common import ensure_same_name
from hotdesk.api.schemas.providers import (
    TemplateCreate,
    TemplateRead,
    TemplateRevisionRead,
    TemplateUpdate,
)
from hotdesk.services import catalog

router = APIRouter(tags=["templates"])


@router.get("/templates")
def list_templates(ctx: Ctx, actor: AdminActor) -> list[TemplateRead]:
    """Templates of the tenant with their current revision."""
    return [TemplateRead.of(t, rev) for t, rev in catalog.list_templates(ctx, actor)]


@router.post("/templates", status_code=201)
def create_template(body: TemplateCreate, ctx: Ctx, actor: AdminActor) -> TemplateRead:
    """Create a template and its revision 1 (409 if the name is taken)."""
    row, revision, _ = catalog.save_template(ctx, actor, body.name, body.spec, create=True)
    return TemplateRead.of(row, revision)


@router.get("/templates/{name}")
def get_template(name: str, ctx: Ctx, actor: AdminActor) -> TemplateRead:
    """One template and its current revision."""
    row, revisions = catalog.get_template(ctx, actor, name)
    current = next((r for r in revisions if r.id == row.current_revision_id), None)
    return TemplateRead.of(row, current)


@router.put("/templates/{name}")
def update_template(name: str, body: TemplateUpdate, ctx: Ctx, actor: AdminActor) -> TemplateRead:
    """Give a template a new spec: a changed spec becomes a new revision (T1)."""
    ensure_same_name(name, body.name)
    row, revision, _ = catalog.save_template(ctx, actor, name, body.spec, create=False)
    return TemplateRead.of(row, revision)


@router.delete("/templates/{name}", status_code=204)
def delete_template(name: str, ctx: Ctx, actor: AdminActor) -> None:
    """Delete a template no pool uses (409 otherwise)."""
    catalog.delete_template(ctx, actor, name)


@router.get("/templates/{name}/revisions")
def list_template_revisions(name: str, ctx: Ctx, actor: AdminActor) -> list[TemplateRevisionRead]:
    """Every revision of a template, newest first."""
    _row, revisions = catalog.get_template(ctx, actor, name)
    return [TemplateRevisionRead.model_validate(r) for r in revisions]
