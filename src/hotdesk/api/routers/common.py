"""Small helpers shared by the routers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from hotdesk.api.schemas.desktops import DesktopRead, EventRead
from hotdesk.db.models import DesktopRow, EventRow
from hotdesk.domain.errors import NotFound, ValidationFailed
from hotdesk.services import pools
from hotdesk.services.context import Actor, BrokerContext


def ensure_same_name(path_name: str, body_name: str | None, field: str = "name") -> None:
    """A body may repeat the object's name, but renaming is not supported (422)."""
    if body_name is not None and body_name != path_name:
        raise ValidationFailed(field, f"must be {path_name!r} (renaming is not supported)")


def desktop_reads(
    ctx: BrokerContext, actor: Actor, rows: Sequence[tuple[DesktopRow, str | None, int | None]]
) -> list[DesktopRead]:
    """Desktop rows (with user name and revision number) as ``DesktopRead``, with deadlines."""
    by_id = {p.id: p for p in pools.list_pools(ctx, actor)}
    grace = timedelta(seconds=ctx.settings.claim_grace_seconds)
    return [
        DesktopRead.of(d, user=user, revision=rev, pool=by_id.get(d.pool_id), claim_grace=grace)
        for d, user, rev in rows
    ]


def find_desktop(ctx: BrokerContext, actor: Actor, desktop_id: str) -> DesktopRead:
    """One live desktop of the actor's tenant (404 if unknown, deleted or another tenant's)."""
    rows = [row for row in pools.list_desktops(ctx, actor) if row[0].id == desktop_id]
    if not rows:
        raise NotFound("desktop", desktop_id)
    return desktop_reads(ctx, actor, rows)[0]


def event_reads(ctx: BrokerContext, actor: Actor, rows: Sequence[EventRow]) -> list[EventRead]:
    """Event rows as ``EventRead``, naming their pool when it is still live."""
    names = {p.id: p.name for p in pools.list_pools(ctx, actor)} if rows else {}
    out = []
    for row in rows:
        event = EventRead.model_validate(row)
        event.pool = names.get(row.pool_id) if row.pool_id else None
        out.append(event)
    return out
