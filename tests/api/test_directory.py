"""``/users``, ``/groups`` and ``/organizations``: every endpoint, bad input changes nothing."""

from __future__ import annotations

from tests.api.helpers import Api, expect, expect_invalid


def test_user_crud_never_shows_password_hashes(api: Api) -> None:
    admin = api.admin
    expect(api.post("/organizations", admin, json={"name": "sales"}), 201)
    body = {"username": "carol", "display_name": "Carol", "organization": "sales"}
    created = expect(api.post("/users", admin, json=body), 201)
    assert created["role"] == "user" and created["organization"] == "sales"
    assert created["has_password"] is False and created["disabled"] is False
    expect(api.post("/users", admin, json=body), 409)

    updated = expect(
        api.put("/users/carol", admin, json={"role": "tenant-admin", "display_name": "C."}), 200
    )
    assert (updated["role"], updated["display_name"], updated["organization"]) == (
        "tenant-admin",
        "C.",
        "sales",
    )
    listed = expect(api.get("/users", admin), 200)
    assert [u["username"] for u in listed] == ["admin", "carol"]
    assert all("hash" not in key and key != "password" for user in listed for key in user)
    assert "hash" not in api.get("/users/admin", admin).text
    expect(api.put("/users/nobody", admin, json={"role": "user"}), 404)

    assert api.delete("/users/carol", admin).status_code == 204
    assert expect(api.get("/users/carol", admin), 200)["disabled"] is True
    expect(api.delete("/users/admin", admin), 409)  # not yourself
    expect(api.delete("/users/nobody", admin), 404)


def test_user_bad_input_changes_nothing(api: Api) -> None:
    admin = api.admin
    for body, field in [
        ({"username": "Bad Name"}, "username"),
        ({"username": "dave", "role": "root"}, "role"),
        ({"username": "dave", "password": "short"}, "password"),
        ({"username": "dave", "organization": "nowhere"}, "organization"),
        ({"username": "dave", "disabled": "yes"}, "disabled"),
        ({"username": "dave", "password_hash": "x"}, "password_hash"),
        ({}, "username"),
    ]:
        expect_invalid(api.post("/users", admin, json=body), field)
    api.world.user("erin")
    before = expect(api.get("/users", admin), 200)
    for body, field in [
        ({"role": "superuser"}, "role"),
        ({"password": "short"}, "password"),
        ({"organization": "nowhere"}, "organization"),
        ({"disabled": None}, "disabled"),
        ({"username": "frank"}, "username"),
    ]:
        expect_invalid(api.put("/users/erin", admin, json=body), field)
    assert expect(api.get("/users", admin), 200) == before


def test_group_crud(api: Api) -> None:
    admin = api.admin
    api.world.user("alice")
    api.world.user("bob")
    created = expect(api.post("/groups", admin, json={"name": "agents", "members": ["bob"]}), 201)
    assert created["members"] == ["bob"]
    expect(api.post("/groups", admin, json={"name": "agents"}), 409)
    updated = expect(api.put("/groups/agents", admin, json={"members": ["alice", "bob"]}), 200)
    assert updated["members"] == ["alice", "bob"]
    assert expect(api.put("/groups/agents", admin, json={}), 200)["members"] == ["alice", "bob"]
    assert [g["name"] for g in expect(api.get("/groups", admin), 200)] == ["agents"]
    assert expect(api.get("/groups/agents", admin), 200)["members"] == ["alice", "bob"]
    expect(api.put("/groups/nope", admin, json={"members": []}), 404)

    expect_invalid(
        api.post("/groups", admin, json={"name": "g2", "members": ["alice", "ghost"]}),
        "members[1]",
    )
    expect_invalid(api.put("/groups/agents", admin, json={"members": ["ghost"]}), "members[0]")
    expect_invalid(api.put("/groups/agents", admin, json={"members": "alice"}), "members")
    expect_invalid(api.post("/groups", admin, json={"name": "No Spaces"}), "name")
    assert expect(api.get("/groups/agents", admin), 200)["members"] == ["alice", "bob"]
    assert [g["name"] for g in expect(api.get("/groups", admin), 200)] == ["agents"]

    assert api.delete("/groups/agents", admin).status_code == 204
    expect(api.get("/groups/agents", admin), 404)
    expect(api.delete("/groups/agents", admin), 404)


def test_organization_crud_and_tree(api: Api) -> None:
    admin = api.admin
    expect(api.post("/organizations", admin, json={"name": "school"}), 201)
    child = expect(
        api.post(
            "/organizations",
            admin,
            json={"name": "class-a", "parent": "school", "display_name": "Class A"},
        ),
        201,
    )
    assert (child["parent"], child["display_name"]) == ("school", "Class A")
    assert expect(api.get("/organizations/class-a", admin), 200) == child
    expect(api.post("/organizations", admin, json={"name": "school"}), 409)
    expect_invalid(
        api.post("/organizations", admin, json={"name": "x", "parent": "nowhere"}), "parent"
    )
    expect_invalid(api.put("/organizations/school", admin, json={"parent": "class-a"}), "parent")
    kept = expect(api.put("/organizations/class-a", admin, json={"display_name": "A"}), 200)
    assert (kept["parent"], kept["display_name"]) == ("school", "A")
    expect(api.delete("/organizations/school", admin), 409)  # has a child
    moved = expect(api.put("/organizations/class-a", admin, json={"parent": None}), 200)
    assert moved["parent"] is None
    listed = expect(api.get("/organizations", admin), 200)
    assert [(o["name"], o["parent"]) for o in listed] == [("class-a", None), ("school", None)]
    expect(api.put("/organizations/nope", admin, json={}), 404)
    assert api.delete("/organizations/school", admin).status_code == 204
    expect(api.get("/organizations/school", admin), 404)
    expect(api.delete("/organizations/school", admin), 404)
