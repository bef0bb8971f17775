"""What admins inspect: desktops with their users and revisions, and the event log (O2)."""

from __future__ import annotations

from sqlalchemy import select

from hotdesk.db.models import DesktopRow, EventRow, PoolRow, TemplateRevisionRow, UserRow
from hotdesk.domain.errors import NotFound, ValidationFailed
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.directory import require_admin
from hotdesk.services.lookup import get_pool


def list_desktops(
    ctx: BrokerContext,
    actor: Actor,
    pool_name: str | None = None,
    *,
    include_deleted: bool = False,
    desktop_id: str | None = None,
) -> list[tuple[DesktopRow, str | None, int | None]]:
    """Desktops of the tenant (or one pool) with their user name and revision number."""
    require_admin(actor)
    with ctx.db.read() as session:
        query = (
            select(DesktopRow, UserRow.username, TemplateRevisionRow.number)
            .outerjoin(UserRow, UserRow.id == DesktopRow.user_id)
            .outerjoin(
                TemplateRevisionRow, TemplateRevisionRow.id == DesktopRow.template_revision_id
            )
            .where(DesktopRow.tenant_id == actor.tenant_id)
        )
        if pool_name is not None:
            query = query.where(
                DesktopRow.pool_id == get_pool(session, actor.tenant_id, pool_name).id
            )
        if desktop_id is not None:
            query = query.where(DesktopRow.id == desktop_id)
        if not include_deleted:
            query = query.where(DesktopRow.state != "deleted")
        rows = session.execute(query.order_by(DesktopRow.pool_id, DesktopRow.sequence)).all()
        return [(d, u, n) for d, u, n in rows]


def list_events(
    ctx: BrokerContext,
    actor: Actor,
    *,
    pool_name: str | None = None,
    desktop_id: str | None = None,
    limit: int = 200,
    before: int | None = None,
) -> list[EventRow]:
    """O2: events of a pool, a desktop or the whole tenant, newest first."""
    require_admin(actor)
    if not 1 <= limit <= 1000:
        raise ValidationFailed("limit", "must be from 1 to 1000")
    with ctx.db.read() as session:
        query = select(EventRow).where(EventRow.tenant_id == actor.tenant_id)
        if pool_name is not None:
            pool = session.scalar(
                select(PoolRow)
                .where(PoolRow.tenant_id == actor.tenant_id, PoolRow.name == pool_name)
                .order_by(PoolRow.created_at.desc())
            )
            if pool is None:
                raise NotFound("pool", pool_name)
            query = query.where(EventRow.pool_id == pool.id)
        if desktop_id is not None:
            desktop = session.get(DesktopRow, desktop_id)
            if desktop is None or desktop.tenant_id != actor.tenant_id:
                raise NotFound("desktop", desktop_id)
            query = query.where(EventRow.desktop_id == desktop_id)
        if before is not None:
            query = query.where(EventRow.id < before)
        return list(session.scalars(query.order_by(EventRow.id.desc()).limit(limit)))
