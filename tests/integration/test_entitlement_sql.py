"""C1: the single-query entitlement check agrees with the pure rule of the domain."""

from __future__ import annotations

from hotdesk.domain.entitlement import effective_users
from hotdesk.services import directory, entitlements
from hotdesk.services.entitlements import EntitlementLine
from hotdesk.services.lookup import pool_entitlements, user_is_entitled
from tests.support import World


def test_sql_check_matches_the_effective_user_set(world: World) -> None:
    admin = world.admin
    for name, parent in [
        ("school", None),
        ("year1", "school"),
        ("class1a", "year1"),
        ("office", None),
    ]:
        directory.save_organization(world.ctx, admin, name, parent=parent)
    people = {
        "ann": "class1a",
        "ben": "year1",
        "cat": "school",
        "dan": "office",
        "eve": None,
        "fay": None,
        "gus": "office",
    }
    actors = {u: world.user(u, organization=org) for u, org in people.items()}
    directory.save_group(world.ctx, admin, "helpers", ["fay", "ann"])
    world.pool("lab", warm=1, max=2)
    cases = [
        [EntitlementLine("organization", "year1", include_suborganizations=True)],
        [EntitlementLine("organization", "year1")],
        [EntitlementLine("group", "helpers"), EntitlementLine("user", "eve")],
        [
            EntitlementLine("organization", "school", include_suborganizations=True),
            EntitlementLine("organization", "office"),
            EntitlementLine("user", "ann"),
        ],
        [],
    ]
    for lines in cases:
        entitlements.set_entitlements(world.ctx, admin, "lab", lines)
        with world.ctx.db.read() as session:
            pool_id = entitlements.get_pool(session, world.tenant_id, "lab").id
            expected = effective_users(
                pool_entitlements(session, pool_id),
                entitlements.load_directory(session, world.tenant_id),
            )
            got = {
                a.user_id
                for a in actors.values()
                if a.user_id and user_is_entitled(session, pool_id, a.user_id)
            }
        assert got == expected, lines


def test_a_disabled_user_is_never_entitled(world: World) -> None:
    zed = world.user("zed")
    world.pool("lab", warm=1, max=2, users=[zed])
    directory.delete_user(world.ctx, world.admin, "zed")
    with world.ctx.db.read() as session:
        pool_id = entitlements.get_pool(session, world.tenant_id, "lab").id
        assert zed.user_id is not None
        assert not user_is_entitled(session, pool_id, zed.user_id)
