"""Loaders shared by the use cases (always inside a caller's transaction)."""

from __future__ import annotations

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from hotdesk.db.models import (
    DesktopRow,
    EntitlementRow,
    GroupMemberRow,
    OrganizationRow,
    PoolRow,
    TemplateRow,
    UserRow,
)
from hotdesk.domain.entitlement import Entitlement
from hotdesk.domain.errors import Forbidden, NotFound
from hotdesk.domain.pools import DesktopView
from hotdesk.domain.states import LIVE_STATES, DesktopState
from hotdesk.services.context import Actor

LIVE = [s.value for s in LIVE_STATES]


def get_pool(session: Session, tenant_id: str, name: str) -> PoolRow:
    """The live (not deleted) pool called ``name`` in the tenant."""
    pool = session.scalar(
        select(PoolRow).where(
            PoolRow.tenant_id == tenant_id, PoolRow.name == name, PoolRow.deleted_at.is_(None)
        )
    )
    if pool is None:
        raise NotFound("pool", name)
    return pool


def lock_pool(session: Session, pool_id: str) -> PoolRow:
    """Load a pool with a row lock (PostgreSQL); serialises creations against ``max``.

    The row is re-read under the lock (``populate_existing``): a copy loaded earlier in the
    session may be stale, e.g. ``next_sequence`` already used by a concurrent claim.
    """
    pool = session.scalar(
        select(PoolRow)
        .where(PoolRow.id == pool_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if pool is None:
        raise NotFound("pool", pool_id)
    return pool


def current_revision_id(session: Session, pool: PoolRow) -> str:
    """The template revision new desktops of the pool are built from (T1)."""
    template = session.get(TemplateRow, pool.template_id)
    if template is None or template.current_revision_id is None:
        raise NotFound("template revision", pool.template_id)
    return template.current_revision_id


def live_desktops(session: Session, pool_id: str) -> list[DesktopRow]:
    """Every desktop of the pool that still occupies a slot."""
    return list(
        session.scalars(
            select(DesktopRow).where(DesktopRow.pool_id == pool_id, DesktopRow.state.in_(LIVE))
        )
    )


def desktop_view(row: DesktopRow) -> DesktopView:
    """The planning view of a desktop row."""
    return DesktopView(
        id=row.id,
        state=DesktopState(row.state),
        user_id=row.user_id,
        revision_id=row.template_revision_id,
        idle_since=row.idle_since,
        state_since=row.state_since,
        datastore=row.datastore,
    )


def held_desktop(session: Session, pool_id: str, user_id: str) -> DesktopRow | None:
    """The desktop the user holds in the pool (at most one, enforced by a unique index)."""
    return session.scalar(
        select(DesktopRow).where(DesktopRow.pool_id == pool_id, DesktopRow.user_id == user_id)
    )


def pool_entitlements(session: Session, pool_id: str) -> list[Entitlement]:
    """The pool's entitlement lines as domain values."""
    rows = session.scalars(select(EntitlementRow).where(EntitlementRow.pool_id == pool_id))
    return [
        Entitlement(
            kind=r.kind,
            subject_id=r.subject_id,
            include_suborganizations=r.include_suborganizations,
        )
        for r in rows
    ]


def org_chain(session: Session, org_id: str | None) -> list[str]:
    """The organisation and its ancestors, nearest first (cycle-safe)."""
    chain: list[str] = []
    while org_id is not None and org_id not in chain:
        chain.append(org_id)
        org = session.get(OrganizationRow, org_id)
        org_id = org.parent_id if org else None
    return chain


def user_is_entitled(session: Session, pool_id: str, user_id: str) -> bool:
    """C1: is the user in the pool's effective user set?

    One ``EXISTS`` query over the pool's entitlement lines (the same rule as the pure
    ``domain.entitlement.is_entitled``), so a pool entitling thousands costs no more.
    """
    user = session.get(UserRow, user_id)
    if user is None or user.disabled:
        return False
    line = EntitlementRow
    groups = select(GroupMemberRow.group_id).where(GroupMemberRow.user_id == user_id)
    matches = [
        and_(line.kind == "user", line.subject_id == user_id),
        and_(line.kind == "group", line.subject_id.in_(groups)),
    ]
    chain = org_chain(session, user.organization_id)
    if chain:
        matches.append(and_(line.kind == "organization", line.subject_id == chain[0]))
    if len(chain) > 1:
        matches.append(
            and_(
                line.kind == "organization",
                line.include_suborganizations.is_(True),
                line.subject_id.in_(chain[1:]),
            )
        )
    found = session.scalar(select(exists().where(line.pool_id == pool_id, or_(*matches))))
    return bool(found)


def ensure_entitled(session: Session, pool: PoolRow, actor: Actor) -> str:
    """Return the actor's user id if entitled to the pool; raise ``Forbidden`` otherwise."""
    if actor.user_id is None or not user_is_entitled(session, pool.id, actor.user_id):
        raise Forbidden(f"you are not entitled to pool {pool.name!r}")
    return actor.user_id
