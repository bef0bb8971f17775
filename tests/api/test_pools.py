"""``/pools``: definition (P1, P2), status, entitlements (C1), Recreate (T2), drain (P4)."""

from __future__ import annotations

from typing import Any

from tests.api.helpers import Api, expect, expect_invalid

POOL: dict[str, Any] = {
    "name": "lab",
    "provider": "sim",
    "template": "base",
    "max_desktops": 10,
    "warm_desktops": 2,
    "retention": "PT30M",
    "name_pattern": "lab-{SEQUENCE}",
    "display_name_pattern": "Lab desktop {SEQUENCE}",
    "permissions": [{"role": "user", "may": ["restart"]}],
}


def test_pool_crud(api: Api) -> None:
    admin = api.admin
    created = expect(api.post("/pools", admin, json=POOL), 201)
    assert {k: created[k] for k in POOL} == POOL | {
        "permissions": [{"user": None, "role": "user", "may": ["restart"]}]
    }
    assert (created["generation"], created["draining"], created["sequence_start"]) == (1, False, 1)
    expect(api.post("/pools", admin, json=POOL), 409)

    got = expect(api.get("/pools/lab", admin), 200)
    assert got["status"]["max"] == 10 and got["status"]["current_revision"] == 1
    assert [p["name"] for p in expect(api.get("/pools", admin), 200)] == ["lab"]
    assert expect(api.get("/pools", admin), 200)[0]["status"] is None
    with_status = expect(api.get("/pools", admin, params={"status": "true"}), 200)
    assert with_status[0]["status"]["warm"] == 2

    edited = expect(
        api.put("/pools/lab", admin, json={"warm_desktops": 3, "retention": "PT1H"}), 200
    )
    assert (edited["warm_desktops"], edited["retention"], edited["generation"]) == (3, "PT1H", 2)
    assert edited["display_name_pattern"] == "Lab desktop {SEQUENCE}"  # left out: kept
    cleared = expect(api.put("/pools/lab", admin, json={"display_name_pattern": None}), 200)
    assert cleared["display_name_pattern"] is None
    expect(api.put("/pools/nope", admin, json={"warm_desktops": 1}), 404)
    expect(api.get("/pools/nope", admin), 404)
    expect(api.get("/pools/nope/status", admin), 404)

    status = expect(api.get("/pools/lab/status", admin), 200)
    assert set(status) >= {
        "ready",
        "provisioning",
        "assigned_connected",
        "assigned_disconnected",
        "failed",
        "deleting",
        "total",
        "idle",
        "waiting",
        "warm",
        "max",
        "retention",
        "draining",
        "provisioning_failing",
        "provisioning_error",
        "current_revision",
        "generation",
    }


def test_invalid_pool_edit_leaves_the_last_good_definition(api: Api) -> None:
    admin = api.admin
    expect(api.post("/pools", admin, json=POOL), 201)
    before = expect(api.get("/pools/lab", admin), 200)
    events_before = expect(api.get("/pools/lab/events", admin), 200)
    message = expect_invalid(
        api.put("/pools/lab", admin, json={"warm_desktops": 11}), "warm_desktops"
    )
    assert message == "warm must be between 1 and max (10)"
    for body, field in [
        ({"max_desktops": 1}, "warm_desktops"),
        ({"max_desktops": 0}, "max_desktops"),
        ({"retention": "30 minutes"}, "retention"),
        ({"retention": "P1M"}, "retention"),
        ({"provider": "nope"}, "provider"),
        ({"template": "nope"}, "template"),
        ({"network": "nope"}, "network"),
        ({"name_pattern": "no-sequence"}, "name_pattern"),
        ({"provision_concurrency": 0}, "provision_concurrency"),
        ({"sequence_start": -1}, "sequence_start"),
        ({"sequence_start": 10**12}, "sequence_start"),
        ({"datastores": ["a", "a"]}, "datastores"),
        ({"auto_create_project": True, "project": "p"}, "project"),
        ({"permissions": [{"user": "a", "role": "user", "may": []}]}, "permissions[0]"),
        ({"permissions": [{"role": "user", "may": ["fly"]}]}, "permissions[0].may"),
        ({"permissions": [{"role": "user", "may": "start"}]}, "permissions[0].may"),
        ({"max_desktops": "10"}, "max_desktops"),
        ({"warm_desktops": True}, "warm_desktops"),
        ({"warm_desktops": None}, "warm_desktops"),
        ({"colour": "blue"}, "colour"),
        ({"name": "renamed"}, "name"),
    ]:
        expect_invalid(api.put("/pools/lab", admin, json=body), field)
    assert expect(api.get("/pools/lab", admin), 200) == before
    assert expect(api.get("/pools/lab/events", admin), 200) == events_before


def test_invalid_pool_creates_create_nothing(api: Api) -> None:
    admin = api.admin
    for body, field in [
        ({**POOL, "warm_desktops": 0}, "warm_desktops"),
        ({**POOL, "retention": "soon"}, "retention"),
        ({**POOL, "name": "Lab 1"}, "name"),
        ({**POOL, "provider": "nope"}, "provider"),
        ({k: v for k, v in POOL.items() if k != "retention"}, "retention"),
        ({k: v for k, v in POOL.items() if k != "template"}, "template"),
    ]:
        expect_invalid(api.post("/pools", admin, json=body), field)
    assert expect(api.get("/pools", admin), 200) == []
    assert [e for e in expect(api.get("/events", admin), 200) if e["pool_id"]] == []


def test_entitlements_and_effective_users(api: Api) -> None:
    admin, world = api.admin, api.world
    for name in ("alice", "bob", "carol"):
        world.user(name)
    expect(api.post("/groups", admin, json={"name": "agents", "members": ["bob", "carol"]}), 201)
    expect(api.post("/organizations", admin, json={"name": "school"}), 201)
    expect(api.post("/organizations", admin, json={"name": "class-a", "parent": "school"}), 201)
    world.user("dave", organization="class-a")
    world.pool("lab")
    lines = [
        {"kind": "user", "name": "alice", "include_suborganizations": False},
        {"kind": "user", "name": "bob", "include_suborganizations": False},
        {"kind": "group", "name": "agents", "include_suborganizations": False},
        {"kind": "organization", "name": "school", "include_suborganizations": True},
    ]
    saved = expect(api.put("/pools/lab/entitlements", admin, json={"entitlements": lines}), 200)
    assert saved["effective_users"] == ["alice", "bob", "carol", "dave"]
    got = expect(api.get("/pools/lab/entitlements", admin), 200)
    by_kind = sorted(got["entitlements"], key=lambda x: (x["kind"], x["name"]))
    assert by_kind == [lines[2], lines[3], lines[0], lines[1]]
    for body, field in [
        ({"entitlements": [{"kind": "team", "name": "x"}]}, "entitlements[0].kind"),
        ({"entitlements": [lines[0], {"kind": "user", "name": "ghost"}]}, "entitlements[1].name"),
        (
            {
                "entitlements": [
                    {"kind": "group", "name": "agents", "include_suborganizations": True}
                ]
            },
            "entitlements[0].include_suborganizations",
        ),
        ({"entitlements": "alice"}, "entitlements"),
        ({}, "entitlements"),
    ]:
        expect_invalid(api.put("/pools/lab/entitlements", admin, json=body), field)
    assert expect(api.get("/pools/lab/entitlements", admin), 200) == got
    expect(api.get("/pools/nope/entitlements", admin), 404)
    cleared = expect(api.put("/pools/lab/entitlements", admin, json={"entitlements": []}), 200)
    assert cleared == {"entitlements": [], "effective_users": []}


async def test_recreate_desktops_and_events(api: Api) -> None:
    admin, world = api.admin, api.world
    world.pool("lab", warm=2, max=3)
    await world.reconciler.converge()
    desktops = expect(api.get("/pools/lab/desktops", admin), 200)
    assert [(d["state"], d["template_revision"], d["pool"]) for d in desktops] == [
        ("ready", 1, "lab"),
        ("ready", 1, "lab"),
    ]
    spec = {"image": "base-image-v2", "vcpus": 1, "memory_mib": 512}
    expect(api.put("/templates/base", admin, json={"spec": spec}), 200)
    replaced = expect(api.post("/pools/lab/recreate", admin), 200)["replaced"]
    assert sorted(replaced) == sorted(d["id"] for d in desktops)
    await world.reconciler.converge()
    after = expect(api.get("/pools/lab/desktops", admin), 200)
    assert [(d["state"], d["template_revision"]) for d in after] == [("ready", 2), ("ready", 2)]
    assert expect(api.get("/pools/lab/status", admin), 200)["current_revision"] == 2
    expect(api.post("/pools/nope/recreate", admin), 404)

    events = expect(api.get("/pools/lab/events", admin), 200)
    assert "recreate" in [e["kind"] for e in events]
    assert events == sorted(events, key=lambda e: -e["id"]) and events[0]["pool"] == "lab"
    first = expect(api.get("/pools/lab/events", admin, params={"limit": 1}), 200)
    assert first == events[:1]
    older = expect(api.get("/pools/lab/events", admin, params={"before": events[0]["id"]}), 200)
    assert older == events[1:]
    expect_invalid(api.get("/pools/lab/events", admin, params={"limit": 0}), "limit")
    expect_invalid(api.get("/pools/lab/events", admin, params={"limit": "many"}), "limit")
    expect(api.get("/pools/nope/events", admin), 404)


async def test_delete_drains_the_pool(api: Api) -> None:
    admin, world = api.admin, api.world
    alice = world.user("alice")
    world.pool("lab", warm=1, max=2, users=[alice])
    await world.reconciler.converge()
    expect(api.post("/me/pools/lab/connect", alice), 200)
    draining = expect(api.delete("/pools/lab", admin), 202)
    assert draining["draining"] is True
    assert expect(api.get("/pools/lab", admin), 200)["draining"] is True
    expect(api.put("/pools/lab", admin, json={"warm_desktops": 2}), 409)
    await world.reconciler.converge()
    assert [d["user"] for d in expect(api.get("/pools/lab/desktops", admin), 200)] == ["alice"]
    expect(api.post("/me/pools/lab/release", alice), 200)
    await world.reconciler.converge()
    expect(api.get("/pools/lab", admin), 404)
    assert expect(api.get("/pools", admin), 200) == []
    expect(api.delete("/pools/lab", admin), 404)
