"""C1: users + group members + organisation members (optionally sub-organisations)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Entitlement:
    """One line of a pool's assignment: a user, a group or an organisation."""

    kind: str  # "user" | "group" | "organization"
    subject_id: str
    include_suborganizations: bool = False


@dataclass(frozen=True)
class Directory:
    """The tenant's directory as plain data: group members, org members and the org tree."""

    group_members: Mapping[str, frozenset[str]]
    org_members: Mapping[str, frozenset[str]]
    org_parent: Mapping[str, str | None]


def suborganizations(org_id: str, org_parent: Mapping[str, str | None]) -> set[str]:
    """Every organisation below ``org_id`` in the tree (not including it); cycle-safe."""
    children: dict[str, list[str]] = {}
    for child, parent in org_parent.items():
        if parent is not None:
            children.setdefault(parent, []).append(child)
    found: set[str] = set()
    stack = list(children.get(org_id, []))
    while stack:
        current = stack.pop()
        if current in found or current == org_id:
            continue
        found.add(current)
        stack.extend(children.get(current, []))
    return found


def effective_users(entitlements: Iterable[Entitlement], directory: Directory) -> set[str]:
    """The de-duplicated set of user ids entitled to a pool."""
    users: set[str] = set()
    for ent in entitlements:
        if ent.kind == "user":
            users.add(ent.subject_id)
        elif ent.kind == "group":
            users |= directory.group_members.get(ent.subject_id, frozenset())
        elif ent.kind == "organization":
            orgs = {ent.subject_id}
            if ent.include_suborganizations:
                orgs |= suborganizations(ent.subject_id, directory.org_parent)
            for org in orgs:
                users |= directory.org_members.get(org, frozenset())
    return users


def would_create_cycle(
    org_id: str, new_parent: str | None, org_parent: Mapping[str, str | None]
) -> bool:
    """Tell whether moving ``org_id`` under ``new_parent`` would make the tree a cycle."""
    current = new_parent
    seen: set[str] = set()
    while current is not None and current not in seen:
        if current == org_id:
            return True
        seen.add(current)
        current = org_parent.get(current)
    return False


def is_entitled(
    entitlements: Iterable[Entitlement],
    *,
    user_id: str,
    group_ids: Iterable[str],
    org_chain: list[str],
) -> bool:
    """Tell whether one user is in a pool's effective set without building the whole set.

    ``org_chain`` is the user's organisation followed by its ancestors, nearest first.
    """
    groups = set(group_ids)
    for ent in entitlements:
        if ent.kind == "user" and ent.subject_id == user_id:
            return True
        if ent.kind == "group" and ent.subject_id in groups:
            return True
        if ent.kind == "organization" and org_chain:
            if org_chain[0] == ent.subject_id:
                return True
            if ent.include_suborganizations and ent.subject_id in org_chain[1:]:
                return True
    return False
