"""Declarative apply: document shape, ordering, error messages, and nothing changed on error."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher

from hotdesk.domain.errors import Forbidden
from hotdesk.services import auth, catalog, directory, pools
from hotdesk.services.apply import (
    KINDS,
    ApplyError,
    apply_documents,
    order_documents,
    parse_documents,
)
from hotdesk.services.auth import verify_password
from tests.support import World


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id with the cheapest parameters: these tests hash a few passwords."""
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def doc(kind: str, name: str, /, **spec: Any) -> dict[str, Any]:
    """A document as YAML would give it."""
    return {"kind": kind, "metadata": {"name": name}, "spec": spec}


def pool_doc(name: str = "lab", **spec: Any) -> dict[str, Any]:
    """A valid pool document on the world's provider and template."""
    fields: dict[str, Any] = {
        "provider": "sim",
        "template": "base",
        "max_desktops": 4,
        "warm_desktops": 2,
        "retention": "PT30M",
    }
    return doc("Pool", name, **(fields | spec))


def refused(documents: list[Any]) -> ApplyError:
    """The error parsing ``documents`` raises."""
    with pytest.raises(ApplyError) as info:
        parse_documents(documents)
    return info.value


# --- shape (no database) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not a mapping", "document 1: a document is a mapping"),
        ({"metadata": {"name": "x"}}, "document 1: kind: required (known: Organization, User"),
        (doc("Desktop", "x"), "document 1: kind: unknown kind 'Desktop'"),
        ({"kind": "Group", "spec": {}}, "document 1 (Group): metadata.name: required"),
        ({"kind": "Group", "metadata": {"name": 5}}, "document 1 (Group): metadata.name"),
        (doc("Group", "Bad_Name"), 'document 1 (Group "Bad_Name"): metadata.name: '),
        (doc("Group", "g", members="alice"), "spec.members: must be a list of strings"),
        (doc("Group", "g", owner="alice"), "spec.owner: unknown field (known: members)"),
        (pool_doc(max_desktops="10"), "spec.max_desktops: must be a whole number, not '10'"),
        (pool_doc(max_desktops=True), "spec.max_desktops: must be a whole number, not True"),
        (pool_doc(login_on_assignment="yes"), "spec.login_on_assignment: must be true or false"),
        (pool_doc(entitlements=[{"user": "a", "extra": 1}]), "spec.entitlements[0].extra: unknown"),
        (pool_doc(permissions=[{"role": "user", "may": "start"}]), "spec.permissions[0].may: must"),
        (doc("Pool", "lab", provider="sim"), 'document 1 (Pool "lab"): spec.template: required'),
        (doc("Template", "t"), 'document 1 (Template "t"): spec.image: required'),
        ({**doc("Group", "g"), "status": {}}, 'document 1 (Group "g"): status: unknown field'),
        ({**doc("Group", "g"), "apiVersion": "v2"}, "apiVersion: must be hotdesk/v1"),
        ({"kind": "Group", "metadata": {"name": "g", "labels": {}}}, "metadata.labels: unknown"),
        ({"kind": "Group", "metadata": {"name": "g"}, "spec": []}, "spec: must be a mapping"),
    ],
)
def test_malformed_documents_are_refused_naming_document_and_field(
    document: Any, message: str
) -> None:
    assert message in str(refused([document]))


def test_error_carries_index_kind_name_and_field() -> None:
    good = doc("Group", "g")
    error = refused([good, doc("User", "u"), pool_doc(vcpus=2)])
    assert (error.index, error.kind, error.name, error.field) == (3, "Pool", "lab", "spec.vcpus")
    assert str(error).startswith('document 3 (Pool "lab"): spec.vcpus: unknown field (known: ')


def test_same_object_twice_is_refused() -> None:
    error = refused([doc("Group", "g"), doc("User", "g"), doc("Group", "g")])
    assert str(error) == 'document 3 (Group "g"): metadata.name: listed twice'


def test_nulls_empty_spec_and_api_version_are_accepted() -> None:
    parsed = parse_documents(
        [
            {"apiVersion": "hotdesk/v1", "kind": "Group", "metadata": {"name": "g"}},
            doc("Organization", "o", parent=None, display_name="O"),
        ]
    )
    assert [(d.index, d.kind, d.name, d.spec) for d in parsed] == [
        (1, "Group", "g", {}),
        (2, "Organization", "o", {"display_name": "O"}),
    ]


def test_nulls_inside_entitlements_and_permissions_are_left_out() -> None:
    entitlements = [{"user": "alice", "group": None, "include_suborganizations": None}]
    permissions = [{"role": "user", "user": None, "may": ["start"]}]
    (parsed,) = parse_documents([pool_doc(entitlements=entitlements, permissions=permissions)])
    assert parsed.spec["entitlements"] == [{"user": "alice"}]
    assert parsed.spec["permissions"] == [{"role": "user", "may": ["start"]}]


def test_order_is_by_kind_then_parents_first_whatever_the_file_order() -> None:
    documents = [
        pool_doc(),
        doc("Template", "t", image="i"),
        doc("Provider", "p", kind="sim"),
        doc("Group", "g"),
        doc("User", "u"),
        doc("Organization", "leaf", parent="mid"),
        doc("Organization", "mid", parent="root"),
        doc("Organization", "root"),
        doc("Organization", "other", parent="outside-the-batch"),
    ]
    ordered = order_documents(parse_documents(documents))
    assert [d.name for d in ordered] == [
        "root", "mid", "leaf", "other", "u", "g", "p", "t", "lab",
    ]  # fmt: skip
    assert [d.kind for d in ordered][3:] == ["Organization", *KINDS[1:]]


def test_organization_cycle_in_the_batch_is_refused() -> None:
    documents = [doc("Organization", "a", parent="b"), doc("Organization", "b", parent="a")]
    with pytest.raises(ApplyError, match=r"spec\.parent: the tree has a cycle"):
        order_documents(parse_documents(documents))


# --- against the database ----------------------------------------------------------------


def snapshot(world: World) -> tuple[Any, ...]:
    """Everything apply could change, by name."""
    ctx, admin = world.ctx, world.admin
    return (
        sorted(u.username for u in directory.list_users(ctx, admin)),
        sorted(o.name for o, _ in directory.list_organizations(ctx, admin)),
        sorted(g.name for g, _ in directory.list_groups(ctx, admin)),
        sorted((p.name, str(p.config)) for p in catalog.list_providers(ctx, admin)),
        sorted(t.name for t, _ in catalog.list_templates(ctx, admin)),
        sorted((p.name, p.generation, p.warm_desktops) for p in pools.list_pools(ctx, admin)),
    )


def test_invalid_pool_refuses_the_batch_before_changing_anything(world: World) -> None:
    before = snapshot(world)
    documents = [
        doc("Organization", "school"),
        doc("User", "alice", password="secret-pass", organization="school"),
        pool_doc(max_desktops=10, warm_desktops=11),
        doc("Group", "class", members=["alice"]),
    ]
    with pytest.raises(ApplyError) as info:
        apply_documents(world.ctx, world.admin, documents)
    assert str(info.value) == (
        'document 3 (Pool "lab"): spec.warm_desktops: warm must be between 1 and max (10)'
    )
    assert info.value.field == "spec.warm_desktops"
    assert snapshot(world) == before


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (pool_doc(provider="nope"), "spec.provider: unknown provider 'nope'"),
        (pool_doc(template="nope"), "spec.template: unknown template 'nope'"),
        (pool_doc(retention="30 minutes"), "spec.retention: '30 minutes' is not an ISO 8601"),
        (pool_doc(network="nowhere"), "spec.network: unknown network 'nowhere'"),
        (pool_doc(name_pattern="lab"), "spec.name_pattern: the name pattern must contain"),
        (pool_doc(permissions=[{"role": "boss", "may": ["start"]}]), "spec.permissions[0].role"),
        (pool_doc(entitlements=[{"group": "nobody"}]), "spec.entitlements[0].group: unknown"),
        (pool_doc(entitlements=[{"user": "a", "group": "b"}]), "spec.entitlements[0]: name exac"),
        (
            pool_doc(entitlements=[{"user": "admin", "include_suborganizations": True}]),
            "spec.entitlements[0].include_suborganizations: only organizations",
        ),
        (doc("User", "bob", password="short"), "spec.password: a password has at least 8"),
        (doc("User", "bob", role="root"), "spec.role: unknown role 'root'"),
        (doc("User", "bob", organization="nowhere"), "spec.organization: unknown organization"),
        (doc("Group", "g", members=["admin", "ghost"]), "spec.members[1]: unknown user 'ghost'"),
        (doc("Organization", "o", parent="ghost"), "spec.parent: unknown organization 'ghost'"),
        (doc("Provider", "p", kind="vmware"), "spec.kind: unknown provider kind 'vmware'"),
        (doc("Provider", "sim", kind="libvirt"), "spec.kind: provider 'sim' is sim; kind cannot"),
        (doc("Provider", "p", kind="sim", config={"create_latency": -1}), "spec.config.create_"),
        (doc("Template", "t", image="i", vcpus=0), "spec.vcpus: must be a whole number from 1"),
    ],
)
def test_semantic_errors_name_the_field_and_change_nothing(
    sqlite_world: World, document: dict[str, Any], message: str
) -> None:
    world = sqlite_world  # read-only checks: one database is enough
    before = snapshot(world)
    batch = [doc("Organization", "school"), doc("User", "alice", password="secret-pass"), document]
    with pytest.raises(ApplyError) as info:
        apply_documents(world.ctx, world.admin, batch)
    assert str(info.value).startswith("document 3 (")
    assert message in str(info.value)
    assert snapshot(world) == before


def test_name_pattern_clash_with_an_existing_pool_is_refused(world: World) -> None:
    world.pool("first", name_pattern="desk-{SEQUENCE}")
    before = snapshot(world)
    with pytest.raises(ApplyError, match=r"spec\.name_pattern: pool 'first' on the same provider"):
        apply_documents(world.ctx, world.admin, [pool_doc(name_pattern="desk-{SEQUENCE}")])
    assert snapshot(world) == before


def test_references_to_objects_earlier_in_the_batch_resolve(world: World) -> None:
    documents = [
        pool_doc(
            provider="lab-sim",
            template="lab-desktop",
            network="lab-net",
            entitlements=[
                {"group": "class"},
                {"organization": "school", "include_suborganizations": True},
            ],
        ),
        doc("Group", "class", members=["alice"]),
        doc("User", "alice", password="secret-pass", organization="year1"),
        doc("Organization", "year1", parent="school"),
        doc("Organization", "school"),
        doc("Template", "lab-desktop", image="img"),
        doc("Provider", "lab-sim", kind="sim", config={"networks": ["lab-net"]}),
    ]
    results = apply_documents(world.ctx, world.admin, documents)
    assert [(r.kind, r.name, r.action, r.index) for r in results] == [
        ("Organization", "school", "created", 5),
        ("Organization", "year1", "created", 4),
        ("User", "alice", "created", 3),
        ("Group", "class", "created", 2),
        ("Provider", "lab-sim", "created", 7),
        ("Template", "lab-desktop", "created", 6),
        ("Pool", "lab", "created", 1),
    ]
    _, users = pools.get_entitlements(world.ctx, world.admin, "lab")
    assert users == ["alice"]


def test_user_password_is_only_set_when_new_or_different(world: World) -> None:
    first = apply_documents(world.ctx, world.admin, [doc("User", "bob", password="first-pass")])
    stored = directory.get_user(world.ctx, world.admin, "bob").password_hash
    again = apply_documents(world.ctx, world.admin, [doc("User", "bob", password="first-pass")])
    assert (first[0].action, again[0].action) == ("created", "unchanged")
    assert directory.get_user(world.ctx, world.admin, "bob").password_hash == stored  # no rehash

    changed = apply_documents(world.ctx, world.admin, [doc("User", "bob", password="second-pass")])
    assert changed[0].action == "updated"
    new_hash = directory.get_user(world.ctx, world.admin, "bob").password_hash
    assert verify_password(new_hash, "second-pass")
    assert not verify_password(new_hash, "first-pass")


def test_only_admins_may_apply(world: World) -> None:
    alice = world.user("alice")
    with pytest.raises(Forbidden):
        apply_documents(world.ctx, alice, [doc("Group", "g")])
