"""C1: users, groups and organisations (with sub-organisations) -> effective users."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from hotdesk.domain.entitlement import (
    Directory,
    Entitlement,
    effective_users,
    is_entitled,
    suborganizations,
    would_create_cycle,
)

#   root
#   ├── sales ── sales-eu ── sales-eu-north
#   └── support
TREE: dict[str, str | None] = {
    "root": None,
    "sales": "root",
    "sales-eu": "sales",
    "sales-eu-north": "sales-eu",
    "support": "root",
}
DIRECTORY = Directory(
    group_members={
        "g-night": frozenset({"ann", "bob"}),
        "g-day": frozenset({"bob", "cid"}),
        "g-empty": frozenset(),
    },
    org_members={
        "root": frozenset({"boss"}),
        "sales": frozenset({"sam"}),
        "sales-eu": frozenset({"eve", "ann"}),
        "sales-eu-north": frozenset({"nik"}),
        "support": frozenset({"sue"}),
    },
    org_parent=TREE,
)


def org_chain(org: str | None, parents: Mapping[str, str | None]) -> list[str]:
    """The user's organisation then its ancestors, cycle-safe (as the services compute it)."""
    chain: list[str] = []
    while org is not None and org not in chain:
        chain.append(org)
        org = parents.get(org)
    return chain


def test_users_groups_and_orgs_are_merged_without_duplicates() -> None:
    ents = [
        Entitlement("user", "ann"),
        Entitlement("user", "ann"),
        Entitlement("group", "g-night"),  # ann, bob
        Entitlement("group", "g-day"),  # bob, cid
        Entitlement("organization", "sales-eu"),  # eve, ann
    ]
    users = effective_users(ents, DIRECTORY)
    assert users == {"ann", "bob", "cid", "eve"}
    assert sorted(users) == sorted(set(users))


def test_sub_organisations_only_when_asked() -> None:
    without = effective_users([Entitlement("organization", "sales")], DIRECTORY)
    assert without == {"sam"}
    with_subs = effective_users([Entitlement("organization", "sales", True)], DIRECTORY)
    assert with_subs == {"sam", "eve", "ann", "nik"}
    everyone = effective_users([Entitlement("organization", "root", True)], DIRECTORY)
    assert everyone == {"boss", "sam", "eve", "ann", "nik", "sue"}


def test_unknown_subjects_and_empty_groups_give_nobody() -> None:
    ents = [
        Entitlement("group", "g-missing"),
        Entitlement("group", "g-empty"),
        Entitlement("organization", "nowhere", True),
        Entitlement("role", "admin"),  # unknown kind: ignored, never everyone
    ]
    assert effective_users(ents, DIRECTORY) == set()
    assert effective_users([], DIRECTORY) == set()


def test_suborganizations() -> None:
    assert suborganizations("sales", TREE) == {"sales-eu", "sales-eu-north"}
    assert suborganizations("root", TREE) == {"sales", "sales-eu", "sales-eu-north", "support"}
    assert suborganizations("sales-eu-north", TREE) == set()
    assert suborganizations("missing", TREE) == set()


def test_cycles_terminate() -> None:
    cyclic = {"a": "c", "b": "a", "c": "b", "self": "self"}
    assert suborganizations("a", cyclic) == {"b", "c"}
    assert suborganizations("self", cyclic) == set()
    directory = Directory(
        group_members={},
        org_members={"a": frozenset({"x"}), "b": frozenset({"y"}), "c": frozenset({"z"})},
        org_parent=cyclic,
    )
    assert effective_users([Entitlement("organization", "b", True)], directory) == {"x", "y", "z"}
    assert is_entitled(
        [Entitlement("organization", "a", True)],
        user_id="y",
        group_ids=[],
        org_chain=org_chain("b", cyclic),
    )


def test_would_create_cycle() -> None:
    assert would_create_cycle("sales", "sales-eu-north", TREE)
    assert would_create_cycle("sales", "sales", TREE)
    assert not would_create_cycle("sales", "support", TREE)
    assert not would_create_cycle("sales", None, TREE)
    assert not would_create_cycle("new", "sales", TREE)
    # an existing cycle elsewhere does not hang the check
    assert not would_create_cycle("x", "a", {"a": "b", "b": "a"})


def test_is_entitled_by_each_kind() -> None:
    ents = [
        Entitlement("user", "solo"),
        Entitlement("group", "g-day"),
        Entitlement("organization", "sales", True),
        Entitlement("organization", "support"),
    ]

    def ok(user: str, groups: list[str], org: str | None) -> bool:
        return is_entitled(ents, user_id=user, group_ids=groups, org_chain=org_chain(org, TREE))

    assert ok("solo", [], None)
    assert ok("cid", ["g-day"], None)
    assert ok("nik", [], "sales-eu-north")  # sub-organisation of sales
    assert ok("sue", [], "support")
    assert not ok("boss", [], "root")  # parents are not included
    assert not ok("ann", ["g-night"], None)
    sub_of_support = {**TREE, "support-2": "support"}
    assert not is_entitled(
        ents, user_id="z", group_ids=[], org_chain=org_chain("support-2", sub_of_support)
    )


# --- is_entitled agrees with effective_users on random directories --------------------

USERS = [f"u{i}" for i in range(8)]
GROUPS = [f"g{i}" for i in range(4)]
ORGS = [f"o{i}" for i in range(6)]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Directory, dict[str, str | None], list[Entitlement]]:
    # plain integers draw fast: -1 means "none", bit masks pick group members
    orgs_of_users = draw(st.lists(st.integers(-1, len(ORGS) - 1), min_size=8, max_size=8))
    parent_of_orgs = draw(st.lists(st.integers(-1, len(ORGS) - 1), min_size=6, max_size=6))
    masks = draw(st.lists(st.integers(0, 2 ** len(USERS) - 1), min_size=4, max_size=4))
    user_org = {u: ORGS[o] if o >= 0 else None for u, o in zip(USERS, orgs_of_users, strict=True)}
    parents = {o: ORGS[p] if p >= 0 else None for o, p in zip(ORGS, parent_of_orgs, strict=True)}
    groups = {
        g: frozenset(u for i, u in enumerate(USERS) if mask >> i & 1)
        for g, mask in zip(GROUPS, masks, strict=True)
    }
    org_members: dict[str, set[str]] = {}
    for user, org in user_org.items():
        if org is not None:
            org_members.setdefault(org, set()).add(user)
    directory = Directory(
        group_members=groups,
        org_members={o: frozenset(m) for o, m in org_members.items()},
        org_parent=parents,  # may contain cycles and self-loops
    )
    kinds = ["user", "group", "organization"]
    subjects = {
        "user": [*USERS, "ghost"],
        "group": [*GROUPS, "g-ghost"],
        "organization": [*ORGS, "o-ghost"],
    }
    lines = draw(
        st.lists(st.tuples(st.integers(0, 2), st.integers(0, 8), st.booleans()), max_size=6)
    )
    ents = []
    for kind_index, subject_index, subs in lines:
        kind = kinds[kind_index]
        names = subjects[kind]
        ents.append(
            Entitlement(kind, names[subject_index % len(names)], subs and kind == "organization")
        )
    return directory, user_org, ents


@settings(max_examples=200)
@given(worlds())
def test_is_entitled_agrees_with_effective_users(
    world: tuple[Directory, dict[str, str | None], list[Entitlement]],
) -> None:
    directory, user_org, ents = world
    effective = effective_users(ents, directory)
    assert effective - {"ghost"} <= set(USERS)
    for user in USERS:
        groups = [g for g, members in directory.group_members.items() if user in members]
        chain = org_chain(user_org[user], directory.org_parent)
        assert is_entitled(ents, user_id=user, group_ids=groups, org_chain=chain) == (
            user in effective
        ), (user, groups, chain)


@given(worlds())
def test_effective_users_is_a_union_of_lines(
    world: tuple[Directory, dict[str, str | None], list[Entitlement]],
) -> None:
    """Each line adds users; order and repetition do not matter."""
    directory, _, ents = world
    union: set[str] = set()
    for ent in ents:
        union |= effective_users([ent], directory)
    assert effective_users(ents, directory) == union
    assert effective_users(list(reversed(ents)) * 2, directory) == union
