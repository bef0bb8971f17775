"""``/me``: cards, Connect (C3-C5), the waiting queue, retention countdown (L4), operations (C8)."""

from __future__ import annotations

from datetime import datetime

from hotdesk.domain.pools import PermissionRule
from tests.api.helpers import Api, expect


async def test_cards_connect_disconnect_release(api: Api) -> None:
    world = api.world
    alice = world.user("alice")
    world.pool("lab", warm=1, max=2, retention=1800, users=[alice])
    world.pool("hidden", warm=1, max=1)
    await world.reconciler.converge()

    cards = expect(api.get("/me/pools", alice), 200)
    assert [(c["pool_name"], c["state"], c["desktop"]) for c in cards] == [
        ("lab", "unassigned", None)
    ]
    assert cards[0]["retention"] == "PT30M" and cards[0]["seconds_left"] is None

    connected = expect(api.post("/me/pools/lab/connect", alice), 200)
    assert connected["state"] == "connected" and connected["outcome"] == "assigned_ready"
    desktop = connected["desktop"]
    assert desktop["state"] == "connected" and desktop["name"]
    again = expect(api.post("/me/pools/lab/connect", alice), 200)
    assert again["desktop"]["id"] == desktop["id"] and again["outcome"] == "reconnected"

    left = expect(api.post("/me/pools/lab/disconnect", alice), 200)
    assert left["state"] == "disconnected" and left["seconds_left"] == 1800
    assert world.clock is not None
    world.clock.advance(600)
    card = expect(api.get("/me/pools/lab", alice), 200)
    assert card["seconds_left"] == 1200
    assert datetime.fromisoformat(card["deadline"]) > world.clock.current

    released = expect(api.post("/me/pools/lab/release", alice), 200)
    assert released["state"] == "unassigned" and released["desktop"] is None
    expect(api.post("/me/pools/lab/cancel", alice), 409)  # not waiting
    expect(api.get("/me/pools/hidden", alice), 403)  # not entitled
    expect(api.post("/me/pools/hidden/connect", alice), 403)
    expect(api.get("/me/pools/nope", alice), 404)


async def test_connect_without_idle_desktop_shows_progress(api: Api) -> None:
    world = api.world
    alice = world.user("alice")
    world.pool("lab", warm=1, max=2, users=[alice])
    card = expect(api.post("/me/pools/lab/connect", alice), 200)
    assert card["state"] == "preparing" and card["progress"]["stage"]
    await world.reconciler.converge()
    ready = expect(api.get("/me/pools/lab", alice), 200)
    assert ready["state"] in ("ready", "connected") and ready["desktop"]["id"]


async def test_waiting_queue_is_first_come_first_served(api: Api) -> None:
    world = api.world
    alice, bob, carol = world.user("alice"), world.user("bob"), world.user("carol")
    world.pool("lab", warm=1, max=1, users=[alice, bob, carol])
    await world.reconciler.converge()

    assert expect(api.post("/me/pools/lab/connect", alice), 200)["state"] == "connected"
    bob_card = expect(api.post("/me/pools/lab/connect", bob), 200)
    assert (bob_card["state"], bob_card["position"], bob_card["outcome"]) == (
        "waiting",
        1,
        "queued",
    )
    carol_card = expect(api.post("/me/pools/lab/connect", carol), 200)
    assert (carol_card["state"], carol_card["position"], carol_card["waiting"]) == ("waiting", 2, 2)
    assert expect(api.get("/pools/lab/status", api.admin), 200)["waiting"] == 2

    expect(api.post("/me/pools/lab/release", alice), 200)
    await world.reconciler.converge()
    bob_card = expect(api.get("/me/pools/lab", bob), 200)
    assert bob_card["state"] in ("ready", "preparing") and bob_card["desktop"] is not None
    assert expect(api.get("/me/pools/lab", carol), 200)["position"] == 1
    assert expect(api.post("/me/pools/lab/connect", bob), 200)["state"] == "connected"

    left = expect(api.post("/me/pools/lab/cancel", carol), 200)
    assert left["state"] == "unassigned"
    assert expect(api.get("/pools/lab/status", api.admin), 200)["waiting"] == 0


async def test_operations_on_own_desktop_follow_pool_permissions(api: Api) -> None:
    world = api.world
    alice = world.user("alice")
    world.pool(
        "lab",
        warm=1,
        max=2,
        users=[alice],
        permissions=(PermissionRule(may=("restart",), role="user"),),
    )
    await world.reconciler.converge()
    desktop_id = expect(api.post("/me/pools/lab/connect", alice), 200)["desktop"]["id"]
    path = f"/me/desktops/{desktop_id}/operations"
    restart = expect(api.post(path, alice, json={"kind": "restart"}), 202)
    expect(api.post(path, alice, json={"kind": "power-off"}), 403)
    expect(api.post(path, alice, json={"kind": "console-log"}), 403)
    await world.reconciler.converge()
    assert expect(api.get(f"/operations/{restart['id']}", alice), 200)["state"] == "done"
