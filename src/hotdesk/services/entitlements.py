"""C1: who may claim from a pool: users, groups and organisations (with sub-organisations)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hotdesk.db.models import (
    EntitlementRow,
    GroupMemberRow,
    GroupRow,
    OrganizationRow,
    PoolRow,
    UserRow,
)
from hotdesk.domain.entitlement import Directory, Entitlement, effective_users
from hotdesk.domain.errors import ValidationFailed
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.directory import require_admin
from hotdesk.services.events import record_event
from hotdesk.services.lookup import get_pool, user_is_entitled


@dataclass(frozen=True)
class EntitlementLine:
    """One entitlement by name, as admins write it."""

    kind: str
    name: str
    include_suborganizations: bool = False


_KIND_ROWS: dict[str, tuple[Any, str]] = {
    "user": (UserRow, "username"),
    "group": (GroupRow, "name"),
    "organization": (OrganizationRow, "name"),
}


def set_entitlements(
    ctx: BrokerContext, actor: Actor, pool_name: str, lines: list[EntitlementLine]
) -> bool:
    """Replace a pool's entitlement lines (C1). Returns whether anything changed."""
    require_admin(actor)
    with ctx.db.write() as session:
        pool = get_pool(session, actor.tenant_id, pool_name)
        wanted = {_resolve_line(session, actor.tenant_id, i, line) for i, line in enumerate(lines)}
        current = {
            (r.kind, r.subject_id, r.include_suborganizations)
            for r in session.scalars(
                select(EntitlementRow).where(EntitlementRow.pool_id == pool.id)
            )
        }
        if wanted == current:
            return False
        for row in session.scalars(select(EntitlementRow).where(EntitlementRow.pool_id == pool.id)):
            session.delete(row)
        session.flush()
        for kind, subject_id, subs in sorted(wanted):
            session.add(
                EntitlementRow(
                    pool_id=pool.id, kind=kind, subject_id=subject_id, include_suborganizations=subs
                )
            )
        record_event(
            session,
            tenant_id=pool.tenant_id,
            actor=actor,
            kind="entitlements",
            now=ctx.now(),
            pool_id=pool.id,
            reason=f"{len(wanted)} entitlement line(s) set",
            data={"lines": [asdict(line) for line in lines]},
        )
    return True


def _resolve_line(
    session: Session, tenant_id: str, index: int, line: EntitlementLine
) -> tuple[str, str, bool]:
    where = f"entitlements[{index}]"
    if line.kind not in _KIND_ROWS:
        raise ValidationFailed(f"{where}.kind", "must be user, group or organization")
    model, column = _KIND_ROWS[line.kind]
    row_id = session.scalar(
        select(model.id).where(model.tenant_id == tenant_id, getattr(model, column) == line.name)
    )
    if row_id is None:
        raise ValidationFailed(f"{where}.name", f"unknown {line.kind} {line.name!r}")
    if line.include_suborganizations and line.kind != "organization":
        raise ValidationFailed(
            f"{where}.include_suborganizations", "only organizations have sub-organizations"
        )
    return line.kind, row_id, line.include_suborganizations


def get_entitlements(
    ctx: BrokerContext, actor: Actor, pool_name: str
) -> tuple[list[EntitlementLine], list[str]]:
    """A pool's entitlement lines and its de-duplicated effective user names (C1)."""
    require_admin(actor)
    with ctx.db.read() as session:
        pool = get_pool(session, actor.tenant_id, pool_name)
        rows = session.scalars(
            select(EntitlementRow).where(EntitlementRow.pool_id == pool.id)
        ).all()
        lines = []
        for r in rows:
            model, column = _KIND_ROWS[r.kind]
            name = session.scalar(select(getattr(model, column)).where(model.id == r.subject_id))
            lines.append(EntitlementLine(r.kind, str(name), r.include_suborganizations))
        users = effective_users(
            [Entitlement(r.kind, r.subject_id, r.include_suborganizations) for r in rows],
            load_directory(session, actor.tenant_id),
        )
        names = session.scalars(
            select(UserRow.username)
            .where(UserRow.id.in_(users), UserRow.disabled.is_(False))
            .order_by(UserRow.username)
        ).all()
        return lines, list(names)


def load_directory(session: Session, tenant_id: str) -> Directory:
    """The tenant's groups, organisation members and tree as plain data."""
    groups: dict[str, set[str]] = {}
    for group_id, user_id in session.execute(
        select(GroupMemberRow.group_id, GroupMemberRow.user_id)
        .join(GroupRow, GroupRow.id == GroupMemberRow.group_id)
        .where(GroupRow.tenant_id == tenant_id)
    ):
        groups.setdefault(group_id, set()).add(user_id)
    orgs: dict[str, set[str]] = {}
    for user_id, org_id in session.execute(
        select(UserRow.id, UserRow.organization_id).where(
            UserRow.tenant_id == tenant_id, UserRow.organization_id.is_not(None)
        )
    ):
        if org_id is not None:
            orgs.setdefault(org_id, set()).add(user_id)
    parents = dict(
        session.execute(
            select(OrganizationRow.id, OrganizationRow.parent_id).where(
                OrganizationRow.tenant_id == tenant_id
            )
        ).all()
    )
    return Directory(
        group_members={k: frozenset(v) for k, v in groups.items()},
        org_members={k: frozenset(v) for k, v in orgs.items()},
        org_parent=parents,
    )


def entitled_pools(session: Session, actor: Actor) -> list[PoolRow]:
    """Live pools the actor may claim from."""
    if actor.user_id is None:
        return []
    pools = session.scalars(
        select(PoolRow)
        .where(PoolRow.tenant_id == actor.tenant_id, PoolRow.deleted_at.is_(None))
        .order_by(PoolRow.name)
    )
    return [p for p in pools if user_is_entitled(session, p.id, actor.user_id)]
