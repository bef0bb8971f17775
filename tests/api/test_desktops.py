"""``/desktops``, ``/operations`` and ``/events``: what administrators see and do (O1, O2, L3)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.api.helpers import Api, expect, expect_invalid


async def test_desktop_details_and_retention_deadline(api: Api) -> None:
    admin, world = api.admin, api.world
    alice = world.user("alice")
    world.pool("lab", warm=2, max=3, retention=600, users=[alice])
    world.pool("other", warm=1, max=1)
    await world.reconciler.converge()
    assert len(expect(api.get("/desktops", admin), 200)) == 3
    assert len(expect(api.get("/desktops", admin, params={"pool": "lab"}), 200)) == 2
    expect(api.get("/desktops", admin, params={"pool": "nope"}), 404)

    card = expect(api.post("/me/pools/lab/connect", alice), 200)
    desktop_id = card["desktop"]["id"]
    got = expect(api.get(f"/desktops/{desktop_id}", admin), 200)
    assert (got["state"], got["user"], got["pool"], got["template_revision"]) == (
        "connected",
        "alice",
        "lab",
        1,
    )
    assert got["name"].startswith("lab-") and got["power_state"] == "running"
    assert got["retention_deadline"] is None and got["console"] is not None
    for key in ("display_name", "host", "datastore", "last_error", "created_at"):
        assert key in got

    expect(api.post("/me/pools/lab/disconnect", alice), 200)
    got = expect(api.get(f"/desktops/{desktop_id}", admin), 200)
    assert world.clock is not None
    deadline = datetime.fromisoformat(got["retention_deadline"])
    assert deadline == world.clock.current + timedelta(seconds=600)
    assert got["state"] == "disconnected"
    expect(api.get("/desktops/no-such-id", admin), 404)


async def test_release_and_delete(api: Api) -> None:
    admin, world = api.admin, api.world
    alice = world.user("alice")
    world.pool("lab", warm=2, max=3, users=[alice])
    await world.reconciler.converge()
    card = expect(api.post("/me/pools/lab/connect", alice), 200)
    mine = card["desktop"]["id"]
    idle = next(d["id"] for d in expect(api.get("/desktops", admin), 200) if d["user"] is None)

    refused = expect(api.post(f"/desktops/{mine}/release", admin), 409)
    assert "alice is connected" in refused["detail"]
    expect(api.post(f"/desktops/{idle}/release", admin, json={}), 409)  # nobody holds it
    expect_invalid(api.post(f"/desktops/{mine}/release", admin, json={"force": "yes"}), "force")
    assert expect(api.get(f"/desktops/{mine}", admin), 200)["state"] == "connected"
    released = expect(api.post(f"/desktops/{mine}/release", admin, json={"force": True}), 202)
    assert released["state"] == "deleting"
    assert expect(api.get("/me/pools/lab", alice), 200)["state"] == "unassigned"

    deleted = expect(api.delete(f"/desktops/{idle}", admin), 202)
    assert deleted["state"] == "deleting"
    expect(api.delete(f"/desktops/{idle}", admin), 409)  # already deleting
    await world.reconciler.converge()
    expect(api.get(f"/desktops/{idle}", admin), 404)  # gone; its events remain
    kinds = [e["to_state"] for e in expect(api.get(f"/desktops/{idle}/events", admin), 200)]
    assert kinds[:2] == ["deleted", "deleting"]
    expect(api.post("/desktops/nope/release", admin, json={"force": True}), 404)
    expect(api.delete("/desktops/nope", admin, params={"force": "true"}), 404)


async def test_operations_and_console_log(api: Api) -> None:
    admin, world = api.admin, api.world
    world.pool("lab", warm=1, max=1)
    await world.reconciler.converge()
    desktop = expect(api.get("/desktops", admin), 200)[0]

    queued = expect(
        api.post(f"/desktops/{desktop['id']}/operations", admin, json={"kind": "power-off"}), 202
    )
    assert queued["state"] == "pending" and queued["kind"] == "power-off"
    log = expect(
        api.post(f"/desktops/{desktop['id']}/operations", admin, json={"kind": "console-log"}),
        202,
    )
    await world.reconciler.converge()
    done = expect(api.get(f"/operations/{queued['id']}", admin), 200)
    assert (done["state"], done["requested_by"]) == ("done", "admin")
    assert expect(api.get(f"/desktops/{desktop['id']}", admin), 200)["power_state"] == "stopped"
    console_log = expect(api.get(f"/operations/{log['id']}", admin), 200)
    assert console_log["state"] == "done" and console_log["result"]

    expect_invalid(
        api.post(f"/desktops/{desktop['id']}/operations", admin, json={"kind": "explode"}), "kind"
    )
    expect_invalid(api.post(f"/desktops/{desktop['id']}/operations", admin, json={}), "kind")
    expect(api.post("/desktops/nope/operations", admin, json={"kind": "restart"}), 404)
    expect(api.get("/operations/nope", admin), 404)
    kinds = [e["kind"] for e in expect(api.get(f"/desktops/{desktop['id']}/events", admin), 200)]
    assert kinds.count("operation") == 4  # two requested, two carried out


async def test_tenant_event_log(api: Api) -> None:
    admin, world = api.admin, api.world
    world.pool("lab", warm=1, max=1)
    world.pool("other", warm=1, max=1)
    await world.reconciler.converge()
    events = expect(api.get("/events", admin), 200)
    assert {e["pool"] for e in events if e["pool_id"]} == {"lab", "other"}
    assert all(
        {"at", "actor", "kind", "reason", "from_state", "to_state"} <= set(e) for e in events
    )
    lab = expect(api.get("/events", admin, params={"pool": "lab"}), 200)
    assert lab and {e["pool"] for e in lab} == {"lab"}
    desktop_id = next(e["desktop_id"] for e in lab if e["desktop_id"])
    one = expect(api.get("/events", admin, params={"desktop": desktop_id}), 200)
    assert {e["desktop_id"] for e in one} == {desktop_id}
    page = expect(api.get("/events", admin, params={"limit": 2}), 200)
    assert page == events[:2]
    rest = expect(api.get("/events", admin, params={"before": page[-1]["id"]}), 200)
    assert rest == events[2:]
    expect_invalid(api.get("/events", admin, params={"limit": 5000}), "limit")
    expect_invalid(api.get("/events", admin, params={"before": "yesterday"}), "before")
    expect_invalid(api.get("/events", admin, params={"before": 10**30}), "before")
    expect(api.get("/events", admin, params={"pool": "nope"}), 404)
    expect(api.get("/events", admin, params={"desktop": "nope"}), 404)
