"""``/users``, ``/groups`` and ``/organizations``: a tenant's directory (C1)."""

from __future__ import annotations

from fastapi import APIRouter

from hotdesk.api.deps import AdminActor, Ctx
from hotdesk.api.routers.common import ensure_same_name
from hotdesk.api.schemas.directory import (
    GroupCreate,
    GroupRead,
    GroupUpdate,
    OrganizationCreate,
    OrganizationRead,
    OrganizationUpdate,
    UserCreate,
    UserRead,
    UserUpdate,
)
from hotdesk.db.models import UserRow
from hotdesk.domain.errors import NotFound
from hotdesk.services import directory
from hotdesk.services.context import Actor, BrokerContext

router = APIRouter()

# --- users -----------------------------------------------------------------------------


@router.get("/users", tags=["users"])
def list_users(ctx: Ctx, actor: AdminActor) -> list[UserRead]:
    """Users of the tenant (deleted users stay, disabled, for the audit log)."""
    orgs = _org_names(ctx, actor)
    return [UserRead.of(u, orgs) for u in directory.list_users(ctx, actor)]


@router.post("/users", status_code=201, tags=["users"])
def create_user(body: UserCreate, ctx: Ctx, actor: AdminActor) -> UserRead:
    """Create a user (409 if the name is taken)."""
    data = directory.UserInput(**body.model_dump())
    row, _ = directory.save_user(ctx, actor, data, create=True)
    return _user_read(ctx, actor, row)


@router.get("/users/{username}", tags=["users"])
def get_user(username: str, ctx: Ctx, actor: AdminActor) -> UserRead:
    """One user."""
    return _user_read(ctx, actor, directory.get_user(ctx, actor, username))


@router.put("/users/{username}", tags=["users"])
def update_user(username: str, body: UserUpdate, ctx: Ctx, actor: AdminActor) -> UserRead:
    """Change a user; fields left out keep their value."""
    ensure_same_name(username, body.username, "username")
    fields = body.model_dump(exclude={"username"})
    row, _ = directory.save_user(
        ctx, actor, directory.UserInput(username=username, **fields), create=False
    )
    return _user_read(ctx, actor, row)


@router.delete("/users/{username}", status_code=204, tags=["users"])
def delete_user(username: str, ctx: Ctx, actor: AdminActor) -> None:
    """Deactivate a user: tokens revoked, desktops released, queues left."""
    directory.delete_user(ctx, actor, username)


def _org_names(ctx: BrokerContext, actor: Actor) -> dict[str, str]:
    return {org.id: org.name for org, _parent in directory.list_organizations(ctx, actor)}


def _user_read(ctx: BrokerContext, actor: Actor, row: UserRow) -> UserRead:
    orgs = _org_names(ctx, actor) if row.organization_id else {}
    return UserRead.of(row, orgs)


# --- groups ----------------------------------------------------------------------------


@router.get("/groups", tags=["groups"])
def list_groups(ctx: Ctx, actor: AdminActor) -> list[GroupRead]:
    """Groups of the tenant and their members."""
    return [
        GroupRead(name=g.name, members=members, created_at=g.created_at)
        for g, members in directory.list_groups(ctx, actor)
    ]


@router.post("/groups", status_code=201, tags=["groups"])
def create_group(body: GroupCreate, ctx: Ctx, actor: AdminActor) -> GroupRead:
    """Create a group with its members (409 if the name is taken)."""
    directory.save_group(ctx, actor, body.name, body.members, create=True)
    return get_group(body.name, ctx, actor)


@router.get("/groups/{name}", tags=["groups"])
def get_group(name: str, ctx: Ctx, actor: AdminActor) -> GroupRead:
    """One group and its members."""
    group, members = directory.get_group(ctx, actor, name)
    return GroupRead(name=group.name, members=members, created_at=group.created_at)


@router.put("/groups/{name}", tags=["groups"])
def update_group(name: str, body: GroupUpdate, ctx: Ctx, actor: AdminActor) -> GroupRead:
    """Replace a group's members (when ``members`` is given)."""
    ensure_same_name(name, body.name)
    directory.save_group(ctx, actor, name, body.members, create=False)
    return get_group(name, ctx, actor)


@router.delete("/groups/{name}", status_code=204, tags=["groups"])
def delete_group(name: str, ctx: Ctx, actor: AdminActor) -> None:
    """Delete a group; pool entitlements naming it go too."""
    directory.delete_group(ctx, actor, name)


# --- organisations ---------------------------------------------------------------------


@router.get("/organizations", tags=["organizations"])
def list_organizations(ctx: Ctx, actor: AdminActor) -> list[OrganizationRead]:
    """The tenant's organisation tree, as a list with parent names."""
    return [
        OrganizationRead(
            name=o.name, parent=parent, display_name=o.display_name, created_at=o.created_at
        )
        for o, parent in directory.list_organizations(ctx, actor)
    ]


@router.post("/organizations", status_code=201, tags=["organizations"])
def create_organization(body: OrganizationCreate, ctx: Ctx, actor: AdminActor) -> OrganizationRead:
    """Create an organisation under ``parent`` (409 if the name is taken)."""
    directory.save_organization(
        ctx, actor, body.name, parent=body.parent, display_name=body.display_name, create=True
    )
    return get_organization(body.name, ctx, actor)


@router.get("/organizations/{name}", tags=["organizations"])
def get_organization(name: str, ctx: Ctx, actor: AdminActor) -> OrganizationRead:
    """One organisation."""
    for org in list_organizations(ctx, actor):
        if org.name == name:
            return org
    raise NotFound("organization", name)


@router.put("/organizations/{name}", tags=["organizations"])
def update_organization(
    name: str, body: OrganizationUpdate, ctx: Ctx, actor: AdminActor
) -> OrganizationRead:
    """Move or rename (display name) an organisation; a cycle is refused (422)."""
    ensure_same_name(name, body.name)
    current = get_organization(name, ctx, actor)
    parent = body.parent if "parent" in body.model_fields_set else current.parent
    directory.save_organization(
        ctx, actor, name, parent=parent, display_name=body.display_name, create=False
    )
    return get_organization(name, ctx, actor)


@router.delete("/organizations/{name}", status_code=204, tags=["organizations"])
def delete_organization(name: str, ctx: Ctx, actor: AdminActor) -> None:
    """Delete a leaf organisation (409 if it has sub-organisations)."""
    get_organization(name, ctx, actor)  # 404 for an unknown name
    directory.delete_organization(ctx, actor, name)
