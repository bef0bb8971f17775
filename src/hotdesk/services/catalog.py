"""Providers and templates (with immutable revisions)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hotdesk.db.models import PoolRow, ProviderRow, TemplateRevisionRow, TemplateRow
from hotdesk.domain.errors import Conflict, NotFound, ValidationFailed
from hotdesk.domain.pools import validate_name
from hotdesk.domain.templates import validate_template_spec
from hotdesk.providers.registry import validate_provider_config
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.directory import require_admin
from hotdesk.services.events import record_event

# --- providers -------------------------------------------------------------------------


def list_providers(ctx: BrokerContext, actor: Actor) -> list[ProviderRow]:
    """Providers of the tenant."""
    require_admin(actor)
    with ctx.db.read() as session:
        return list(
            session.scalars(
                select(ProviderRow)
                .where(ProviderRow.tenant_id == actor.tenant_id)
                .order_by(ProviderRow.name)
            )
        )


def get_provider(ctx: BrokerContext, actor: Actor, name: str) -> ProviderRow:
    """One provider of the tenant."""
    require_admin(actor)
    with ctx.db.read() as session:
        return provider_by_name(session, actor.tenant_id, name)


def provider_by_name(
    session: Session, tenant_id: str, name: str, *, field_name: str = "provider"
) -> ProviderRow:
    """Find a provider by name in a tenant; ``NotFound`` otherwise."""
    row = session.scalar(
        select(ProviderRow).where(ProviderRow.tenant_id == tenant_id, ProviderRow.name == name)
    )
    if row is None:
        raise NotFound("provider", name)
    return row


def save_provider(
    ctx: BrokerContext,
    actor: Actor,
    name: str,
    *,
    kind: str,
    config: dict[str, Any],
    max_concurrent_provisioning: int = 10,
    create: bool | None = None,
) -> tuple[ProviderRow, bool]:
    """Create or update a provider; the driver validates ``config``."""
    require_admin(actor)
    validate_name(name)
    if not 1 <= max_concurrent_provisioning <= 10000:
        raise ValidationFailed("max_concurrent_provisioning", "must be from 1 to 10000")
    cleaned = validate_provider_config(kind, config)
    with ctx.db.write() as session:
        now = ctx.now()
        row = session.scalar(
            select(ProviderRow).where(
                ProviderRow.tenant_id == actor.tenant_id, ProviderRow.name == name
            )
        )
        if row is not None and create is True:
            raise Conflict(f"provider {name!r} already exists")
        if row is None and create is False:
            raise NotFound("provider", name)
        if row is None:
            row = ProviderRow(tenant_id=actor.tenant_id, name=name, kind=kind, created_at=now)
            session.add(row)
        elif row.kind != kind:
            raise ValidationFailed("kind", f"provider {name!r} is {row.kind}; kind cannot change")
        changed = _update_provider(row, cleaned, max_concurrent_provisioning, now)
        if changed:
            session.flush()
            record_event(
                session,
                tenant_id=actor.tenant_id,
                actor=actor,
                kind="provider-saved",
                now=now,
                reason=f"provider {name!r} ({kind}) saved",
            )
    return row, changed


def _update_provider(
    row: ProviderRow, config: dict[str, Any], max_concurrent: int, now: datetime
) -> bool:
    if (
        row.id is not None
        and row.config == config
        and (row.max_concurrent_provisioning == max_concurrent)
    ):
        return False
    row.config = config
    row.max_concurrent_provisioning = max_concurrent
    row.updated_at = now
    return True


def delete_provider(ctx: BrokerContext, actor: Actor, name: str) -> None:
    """Delete a provider no pool uses."""
    require_admin(actor)
    with ctx.db.write() as session:
        row = provider_by_name(session, actor.tenant_id, name)
        used = session.scalar(
            select(func.count())
            .select_from(PoolRow)
            .where(PoolRow.provider_id == row.id, PoolRow.deleted_at.is_(None))
        )
        if used:
            raise Conflict(f"provider {name!r} is used by {used} pool(s)")
        if session.scalar(
            select(func.count()).select_from(PoolRow).where(PoolRow.provider_id == row.id)
        ):
            raise Conflict(f"provider {name!r} still has history of deleted pools; keep it")
        session.delete(row)


# --- templates -------------------------------------------------------------------------


def list_templates(
    ctx: BrokerContext, actor: Actor
) -> list[tuple[TemplateRow, TemplateRevisionRow | None]]:
    """Templates of the tenant with their current revision."""
    require_admin(actor)
    with ctx.db.read() as session:
        rows = session.scalars(
            select(TemplateRow)
            .where(TemplateRow.tenant_id == actor.tenant_id)
            .order_by(TemplateRow.name)
        ).all()
        return [
            (
                t,
                session.get(TemplateRevisionRow, t.current_revision_id)
                if t.current_revision_id
                else None,
            )
            for t in rows
        ]


def template_by_name(session: Session, tenant_id: str, name: str) -> TemplateRow:
    """Find a template by name in a tenant."""
    row = session.scalar(
        select(TemplateRow).where(TemplateRow.tenant_id == tenant_id, TemplateRow.name == name)
    )
    if row is None:
        raise NotFound("template", name)
    return row


def get_template(
    ctx: BrokerContext, actor: Actor, name: str
) -> tuple[TemplateRow, list[TemplateRevisionRow]]:
    """A template with all its revisions, newest first."""
    require_admin(actor)
    with ctx.db.read() as session:
        row = template_by_name(session, actor.tenant_id, name)
        revisions = session.scalars(
            select(TemplateRevisionRow)
            .where(TemplateRevisionRow.template_id == row.id)
            .order_by(TemplateRevisionRow.number.desc())
        )
        return row, list(revisions)


def save_template(
    ctx: BrokerContext, actor: Actor, name: str, spec: dict[str, Any], *, create: bool | None = None
) -> tuple[TemplateRow, TemplateRevisionRow, bool]:
    """Create a template or add a revision when the spec changed (T1: revisions are immutable)."""
    require_admin(actor)
    validate_name(name)
    cleaned = validate_template_spec(spec)
    with ctx.db.write() as session:
        now = ctx.now()
        row = session.scalar(
            select(TemplateRow).where(
                TemplateRow.tenant_id == actor.tenant_id, TemplateRow.name == name
            )
        )
        if row is not None and create is True:
            raise Conflict(f"template {name!r} already exists")
        if row is None and create is False:
            raise NotFound("template", name)
        if row is None:
            row = TemplateRow(tenant_id=actor.tenant_id, name=name, created_at=now)
            session.add(row)
            session.flush()
        current = (
            session.get(TemplateRevisionRow, row.current_revision_id)
            if row.current_revision_id
            else None
        )
        if current is not None and current.spec == cleaned:
            return row, current, False
        number = (current.number + 1) if current else 1
        revision = TemplateRevisionRow(
            template_id=row.id, number=number, spec=cleaned, created_at=now
        )
        session.add(revision)
        session.flush()
        row.current_revision_id = revision.id
        record_event(
            session,
            tenant_id=actor.tenant_id,
            actor=actor,
            kind="template-revision",
            now=now,
            reason=f"template {name!r} revision {number}",
            data={"revision_id": revision.id},
        )
        pools = session.scalars(select(PoolRow.id).where(PoolRow.template_id == row.id)).all()
    for pool_id in pools:
        ctx.wakeups.notify(pool_id)
    return row, revision, True


def delete_template(ctx: BrokerContext, actor: Actor, name: str) -> None:
    """Delete a template no pool (live or past) uses."""
    require_admin(actor)
    with ctx.db.write() as session:
        row = template_by_name(session, actor.tenant_id, name)
        if session.scalar(
            select(func.count()).select_from(PoolRow).where(PoolRow.template_id == row.id)
        ):
            raise Conflict(f"template {name!r} is used by a pool")
        for rev in session.scalars(
            select(TemplateRevisionRow).where(TemplateRevisionRow.template_id == row.id)
        ):
            session.delete(rev)
        session.delete(row)
