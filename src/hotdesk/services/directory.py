"""Tenants, users, groups and the organisation tree (C1)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hotdesk.db.models import (
    DesktopRow,
    EntitlementRow,
    GroupMemberRow,
    GroupRow,
    OrganizationRow,
    QueueEntryRow,
    TenantRow,
    TokenRow,
    UserRow,
)
from hotdesk.domain.entitlement import would_create_cycle
from hotdesk.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from hotdesk.domain.pools import ROLES, validate_name
from hotdesk.services.auth import hash_password
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.events import record_event
from hotdesk.services.sessions import release_desktop


def require_admin(actor: Actor) -> None:
    """Raise ``Forbidden`` unless the actor administers its tenant."""
    if not actor.is_admin:
        raise Forbidden("this needs the tenant-admin role")


def create_tenant(ctx: BrokerContext, name: str) -> TenantRow:
    """Create a tenant (server-side administration: CLI or bootstrap)."""
    validate_name(name)
    with ctx.db.write() as session:
        if session.scalar(select(TenantRow).where(TenantRow.name == name)):
            raise Conflict(f"tenant {name!r} already exists")
        tenant = TenantRow(name=name, created_at=ctx.now())
        session.add(tenant)
    return tenant


def tenant_by_name(ctx: BrokerContext, name: str) -> TenantRow:
    """Find a tenant by name."""
    with ctx.db.read() as session:
        tenant = session.scalar(select(TenantRow).where(TenantRow.name == name))
        if tenant is None:
            raise NotFound("tenant", name)
        return tenant


# --- users -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UserInput:
    """Fields an admin sets on a user (``None`` = leave as is on update)."""

    username: str
    password: str | None = None
    role: str | None = None
    display_name: str | None = None
    organization: str | None = None
    disabled: bool | None = None


def list_users(ctx: BrokerContext, actor: Actor) -> list[UserRow]:
    """Users of the actor's tenant."""
    require_admin(actor)
    with ctx.db.read() as session:
        return list(
            session.scalars(
                select(UserRow)
                .where(UserRow.tenant_id == actor.tenant_id)
                .order_by(UserRow.username)
            )
        )


def get_user(ctx: BrokerContext, actor: Actor, username: str) -> UserRow:
    """One user of the actor's tenant."""
    require_admin(actor)
    with ctx.db.read() as session:
        return _user(session, actor.tenant_id, username)


def _user(session: Session, tenant_id: str, username: str) -> UserRow:
    user = session.scalar(
        select(UserRow).where(UserRow.tenant_id == tenant_id, UserRow.username == username)
    )
    if user is None:
        raise NotFound("user", username)
    return user


def save_user(
    ctx: BrokerContext, actor: Actor, data: UserInput, *, create: bool | None = None
) -> tuple[UserRow, bool]:
    """Create or update a user; ``create=True`` refuses an existing one, ``False`` a new one.

    Returns the user and whether anything changed.
    """
    require_admin(actor)
    validate_name(data.username, field_name="username")
    if data.role is not None and data.role not in ROLES:
        raise ValidationFailed("role", f"unknown role {data.role!r} (known: {', '.join(ROLES)})")
    password_hash = hash_password(data.password) if data.password is not None else None
    with ctx.db.write() as session:
        user = session.scalar(
            select(UserRow).where(
                UserRow.tenant_id == actor.tenant_id, UserRow.username == data.username
            )
        )
        if user is not None and create is True:
            raise Conflict(f"user {data.username!r} already exists")
        if user is None and create is False:
            raise NotFound("user", data.username)
        org_id = _org_id(session, actor.tenant_id, data.organization) if data.organization else None
        changed = user is None
        if user is None:
            user = UserRow(
                tenant_id=actor.tenant_id,
                username=data.username,
                role=data.role or "user",
                created_at=ctx.now(),
            )
            session.add(user)
        changed |= _apply_user_fields(user, data, password_hash, org_id)
        if changed:
            session.flush()
            record_event(
                session,
                tenant_id=actor.tenant_id,
                actor=actor,
                kind="user-saved",
                now=ctx.now(),
                reason=f"user {data.username!r} saved",
            )
    return user, changed


def _apply_user_fields(
    user: UserRow, data: UserInput, password_hash: str | None, org_id: str | None
) -> bool:
    changed = False
    updates = {"role": data.role, "display_name": data.display_name, "disabled": data.disabled}
    if data.organization is not None:
        updates["organization_id"] = org_id
    for key, value in updates.items():
        if value is not None and getattr(user, key) != value:
            setattr(user, key, value)
            changed = True
    if password_hash is not None:
        user.password_hash = password_hash
        changed = True
    return changed


def delete_user(ctx: BrokerContext, actor: Actor, username: str) -> None:
    """Deactivate a user: tokens revoked, desktops released, queue left, memberships removed.

    The row stays (with ``disabled``) so the audit log keeps naming who did what.
    """
    require_admin(actor)
    with ctx.db.write() as session:
        user = _user(session, actor.tenant_id, username)
        if user.id == actor.user_id:
            raise Conflict("you cannot delete yourself")
        user.disabled = True
        session.execute(delete(TokenRow).where(TokenRow.user_id == user.id))
        session.execute(delete(GroupMemberRow).where(GroupMemberRow.user_id == user.id))
        for desktop in session.scalars(select(DesktopRow).where(DesktopRow.user_id == user.id)):
            release_desktop(session, desktop, actor=actor, now=ctx.now(), reason="user deleted")
        for entry in session.scalars(
            select(QueueEntryRow).where(
                QueueEntryRow.user_id == user.id, QueueEntryRow.state == "waiting"
            )
        ):
            entry.state, entry.ended_at = "cancelled", ctx.now()
        record_event(
            session,
            tenant_id=actor.tenant_id,
            actor=actor,
            kind="user-deleted",
            now=ctx.now(),
            reason=f"user {username!r} deactivated",
        )


# --- groups ----------------------------------------------------------------------------


def list_groups(ctx: BrokerContext, actor: Actor) -> list[tuple[GroupRow, list[str]]]:
    """Groups of the tenant with their members' user names."""
    require_admin(actor)
    with ctx.db.read() as session:
        groups = session.scalars(
            select(GroupRow).where(GroupRow.tenant_id == actor.tenant_id).order_by(GroupRow.name)
        ).all()
        return [(g, _members(session, g.id)) for g in groups]


def get_group(ctx: BrokerContext, actor: Actor, name: str) -> tuple[GroupRow, list[str]]:
    """One group and its members."""
    require_admin(actor)
    with ctx.db.read() as session:
        group = _group(session, actor.tenant_id, name)
        return group, _members(session, group.id)


def _members(session: Session, group_id: str) -> list[str]:
    return list(
        session.scalars(
            select(UserRow.username)
            .join(GroupMemberRow, GroupMemberRow.user_id == UserRow.id)
            .where(GroupMemberRow.group_id == group_id)
            .order_by(UserRow.username)
        )
    )


def _group(session: Session, tenant_id: str, name: str) -> GroupRow:
    group = session.scalar(
        select(GroupRow).where(GroupRow.tenant_id == tenant_id, GroupRow.name == name)
    )
    if group is None:
        raise NotFound("group", name)
    return group


def save_group(
    ctx: BrokerContext,
    actor: Actor,
    name: str,
    members: list[str] | None,
    *,
    create: bool | None = None,
) -> tuple[GroupRow, bool]:
    """Create or update a group; ``members`` (user names) replaces the membership when given."""
    require_admin(actor)
    validate_name(name)
    with ctx.db.write() as session:
        group = session.scalar(
            select(GroupRow).where(GroupRow.tenant_id == actor.tenant_id, GroupRow.name == name)
        )
        if group is not None and create is True:
            raise Conflict(f"group {name!r} already exists")
        if group is None and create is False:
            raise NotFound("group", name)
        changed = group is None
        if group is None:
            group = GroupRow(tenant_id=actor.tenant_id, name=name, created_at=ctx.now())
            session.add(group)
            session.flush()
        if members is not None:
            changed |= _set_members(session, actor.tenant_id, group.id, members)
    return group, changed


def _set_members(session: Session, tenant_id: str, group_id: str, members: list[str]) -> bool:
    wanted: set[str] = set()
    for index, username in enumerate(members):
        user = session.scalar(
            select(UserRow).where(UserRow.tenant_id == tenant_id, UserRow.username == username)
        )
        if user is None:
            raise ValidationFailed(f"members[{index}]", f"unknown user {username!r}")
        wanted.add(user.id)
    current = set(
        session.scalars(select(GroupMemberRow.user_id).where(GroupMemberRow.group_id == group_id))
    )
    if current == wanted:
        return False
    session.execute(
        delete(GroupMemberRow).where(
            GroupMemberRow.group_id == group_id, GroupMemberRow.user_id.in_(current - wanted)
        )
    )
    for user_id in wanted - current:
        session.add(GroupMemberRow(group_id=group_id, user_id=user_id))
    return True


def delete_group(ctx: BrokerContext, actor: Actor, name: str) -> None:
    """Delete a group; pool entitlements naming it are removed too."""
    require_admin(actor)
    with ctx.db.write() as session:
        group = _group(session, actor.tenant_id, name)
        session.execute(
            delete(EntitlementRow).where(
                EntitlementRow.kind == "group", EntitlementRow.subject_id == group.id
            )
        )
        session.execute(delete(GroupMemberRow).where(GroupMemberRow.group_id == group.id))
        session.delete(group)


# --- organisations ---------------------------------------------------------------------


def list_organizations(
    ctx: BrokerContext, actor: Actor
) -> list[tuple[OrganizationRow, str | None]]:
    """Organisations of the tenant with their parent's name."""
    require_admin(actor)
    with ctx.db.read() as session:
        orgs = session.scalars(
            select(OrganizationRow)
            .where(OrganizationRow.tenant_id == actor.tenant_id)
            .order_by(OrganizationRow.name)
        ).all()
        names = {o.id: o.name for o in orgs}
        return [(o, names.get(o.parent_id) if o.parent_id else None) for o in orgs]


def _org_id(
    session: Session, tenant_id: str, name: str, *, field_name: str = "organization"
) -> str:
    org = session.scalar(
        select(OrganizationRow).where(
            OrganizationRow.tenant_id == tenant_id, OrganizationRow.name == name
        )
    )
    if org is None:
        raise ValidationFailed(field_name, f"unknown organization {name!r}")
    return org.id


def save_organization(
    ctx: BrokerContext,
    actor: Actor,
    name: str,
    *,
    parent: str | None,
    display_name: str | None = None,
    create: bool | None = None,
) -> tuple[OrganizationRow, bool]:
    """Create or update an organisation; ``parent`` places it in the tree (no cycles)."""
    require_admin(actor)
    validate_name(name)
    with ctx.db.write() as session:
        org = session.scalar(
            select(OrganizationRow).where(
                OrganizationRow.tenant_id == actor.tenant_id, OrganizationRow.name == name
            )
        )
        if org is not None and create is True:
            raise Conflict(f"organization {name!r} already exists")
        if org is None and create is False:
            raise NotFound("organization", name)
        parent_id = (
            _org_id(session, actor.tenant_id, parent, field_name="parent") if parent else None
        )
        changed = org is None
        if org is None:
            org = OrganizationRow(tenant_id=actor.tenant_id, name=name, created_at=ctx.now())
            session.add(org)
            session.flush()
        tree = dict(
            session.execute(
                select(OrganizationRow.id, OrganizationRow.parent_id).where(
                    OrganizationRow.tenant_id == actor.tenant_id
                )
            ).all()
        )
        if would_create_cycle(org.id, parent_id, tree):
            raise ValidationFailed("parent", f"{parent!r} is below {name!r}: that would be a cycle")
        if org.parent_id != parent_id or (display_name and org.display_name != display_name):
            org.parent_id = parent_id
            org.display_name = display_name or org.display_name
            changed = True
    return org, changed


def delete_organization(ctx: BrokerContext, actor: Actor, name: str) -> None:
    """Delete a leaf organisation; its users lose their organisation, entitlements go."""
    require_admin(actor)
    with ctx.db.write() as session:
        org_id = _org_id(session, actor.tenant_id, name, field_name="name")
        if session.scalar(select(OrganizationRow.id).where(OrganizationRow.parent_id == org_id)):
            raise Conflict(f"organization {name!r} has sub-organizations; delete them first")
        for user in session.scalars(select(UserRow).where(UserRow.organization_id == org_id)):
            user.organization_id = None
        session.execute(
            delete(EntitlementRow).where(
                EntitlementRow.kind == "organization", EntitlementRow.subject_id == org_id
            )
        )
        session.execute(delete(OrganizationRow).where(OrganizationRow.id == org_id))
