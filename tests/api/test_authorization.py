"""The authorisation matrix: anonymous vs user vs admin, user A vs user B, tenant 1 vs 2."""

from __future__ import annotations

import re
from collections.abc import Iterator

from fastapi import FastAPI

from hotdesk.services.context import Actor
from tests.api.helpers import PREFIX, Api, expect, make_client
from tests.support import World, make_world

#: Routes any signed-in user may call; every other ``/api/v1`` route needs tenant-admin.
USER_ROUTES = re.compile(r"^/api/v1/(auth/|me/|operations/)")
#: Routes that authenticate otherwise (the guest agent's per-desktop credential).
OTHER_AUTH = re.compile(r"^/api/v1/(auth/login|agent/)")


def api_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """Every (method, concrete path) of the versioned API, path parameters filled in."""
    for path, operations in app.openapi()["paths"].items():
        if path.startswith(PREFIX):
            concrete = re.sub(r"\{[^}]+\}", "x", path).removeprefix(PREFIX)
            for method in sorted(operations):
                yield method.upper(), concrete


def test_anonymous_gets_401_and_users_get_403_on_admin_routes(api: Api) -> None:
    app = api.client.app
    assert isinstance(app, FastAPI)
    alice = api.world.user("alice")
    routes = list(api_routes(app))
    assert len(routes) > 50
    admin_only = 0
    for method, path in routes:
        if OTHER_AUTH.match(PREFIX + path):
            continue
        answer = api.request(method, path, json={})
        assert answer.status_code == 401, (method, path, answer.text)
        if not USER_ROUTES.match(PREFIX + path):
            answer = api.request(method, path, alice, json={})
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["detail"] == "this needs the tenant-admin role"
            admin_only += 1
    assert admin_only > 40
    assert expect(api.get("/pools", api.admin), 200) == []  # nothing was changed


async def test_user_cannot_see_or_operate_another_users_desktop(api: Api) -> None:
    world = api.world
    alice, bob = world.user("alice"), world.user("bob")
    from hotdesk.domain.pools import PermissionRule

    world.pool(
        "lab",
        warm=2,
        max=3,
        users=[alice, bob],
        permissions=(PermissionRule(may=("restart", "stop"), role="user"),),
    )
    await world.reconciler.converge()
    alices = expect(api.post("/me/pools/lab/connect", alice), 200)["desktop"]["id"]
    op = expect(api.post(f"/me/desktops/{alices}/operations", alice, json={"kind": "restart"}), 202)

    expect(api.post(f"/me/desktops/{alices}/operations", bob, json={"kind": "restart"}), 404)
    expect(api.get(f"/operations/{op['id']}", bob), 404)
    expect(api.get(f"/desktops/{alices}", bob), 403)
    assert expect(api.get("/me/pools/lab", bob), 200)["state"] == "unassigned"
    bobs = expect(api.post("/me/pools/lab/connect", bob), 200)["desktop"]["id"]
    assert bobs != alices
    expect(api.post(f"/me/desktops/{bobs}/operations", alice, json={"kind": "power-off"}), 404)
    assert expect(api.get(f"/operations/{op['id']}", alice), 200)["kind"] == "restart"
    assert expect(api.get(f"/operations/{op['id']}", api.admin), 200)["desktop_id"] == alices


def _second_tenant(database_url: str, world: World) -> tuple[World, Actor]:
    other = make_world(database_url, clock=world.clock, tenant="t2")
    return other, other.admin


async def test_tenants_are_isolated(api: Api, database_url: str) -> None:
    world = api.world
    alice = world.user("alice")
    world.pool("lab", warm=1, max=2, users=[alice])
    await world.reconciler.converge()
    desktop_id = expect(api.post("/me/pools/lab/connect", alice), 200)["desktop"]["id"]
    op = expect(
        api.post(f"/desktops/{desktop_id}/operations", api.admin, json={"kind": "restart"}), 202
    )
    t2, t2_admin = _second_tenant(database_url, world)
    try:
        with make_client(t2) as client:
            other = Api(client, t2)
            mallory = t2.user("mallory")
            _check_t2_admin_sees_nothing_of_t1(other, t2_admin, desktop_id, op["id"])
            expect(other.get("/me/pools/lab", mallory), 404)
            expect(other.post("/me/pools/lab/connect", mallory), 404)
            expect(
                other.post(
                    f"/me/desktops/{desktop_id}/operations", mallory, json={"kind": "restart"}
                ),
                404,
            )
            assert expect(other.get("/me/pools", mallory), 200) == []
            # same names live side by side in both tenants
            expect(
                other.post(
                    "/pools",
                    t2_admin,
                    json={
                        "name": "lab",
                        "provider": "sim",
                        "template": "base",
                        "max_desktops": 1,
                        "warm_desktops": 1,
                        "retention": "PT1M",
                    },
                ),
                201,
            )
        assert expect(api.get("/pools/lab", api.admin), 200)["max_desktops"] == 2
        assert [u["username"] for u in expect(api.get("/users", api.admin), 200)] == [
            "admin",
            "alice",
        ]
    finally:
        t2.ctx.db.dispose()


def _check_t2_admin_sees_nothing_of_t1(
    other: Api, admin: Actor, desktop_id: str, operation_id: str
) -> None:
    assert expect(other.get("/pools", admin), 200) == []
    assert expect(other.get("/desktops", admin), 200) == []
    users = [u["username"] for u in expect(other.get("/users", admin), 200)]
    assert users == ["admin", "mallory"]
    events = expect(other.get("/events", admin), 200)
    assert [e for e in events if e["pool_id"] or e["desktop_id"]] == []
    for path in (
        "/pools/lab",
        "/pools/lab/status",
        "/pools/lab/entitlements",
        "/pools/lab/desktops",
        "/pools/lab/events",
        f"/desktops/{desktop_id}",
        f"/desktops/{desktop_id}/events",
        f"/operations/{operation_id}",
        "/users/alice",
    ):
        expect(other.get(path, admin), 404)
    expect(other.put("/pools/lab", admin, json={"warm_desktops": 1}), 404)
    expect(other.delete("/pools/lab", admin), 404)
    expect(other.post("/pools/lab/recreate", admin), 404)
    expect(other.post(f"/desktops/{desktop_id}/release", admin, json={"force": True}), 404)
    expect(other.delete(f"/desktops/{desktop_id}", admin, params={"force": "true"}), 404)
    expect(other.post(f"/desktops/{desktop_id}/operations", admin, json={"kind": "power-off"}), 404)
    expect(other.put("/users/alice", admin, json={"role": "tenant-admin"}), 404)
    expect(other.delete("/users/alice", admin), 404)
