"""``/providers`` and ``/templates``: every endpoint, and bad input that changes nothing."""

from __future__ import annotations

from typing import Any

from tests.api.helpers import Api, expect, expect_invalid


def test_provider_crud(api: Api) -> None:
    admin = api.admin
    listed = expect(api.get("/providers", admin), 200)
    assert [p["name"] for p in listed] == ["sim"]
    assert {"health_ok", "health_detail", "checked_at"} <= set(listed[0])

    body = {"name": "lab-sim", "kind": "sim", "config": {"platform": "api-test"}}
    created = expect(api.post("/providers", admin, json=body), 201)
    assert created["kind"] == "sim" and created["config"]["platform"] == "api-test"
    assert created["max_concurrent_provisioning"] == 10 and created["health_ok"] is None
    expect(api.post("/providers", admin, json=body), 409)

    updated = expect(
        api.put("/providers/lab-sim", admin, json={"max_concurrent_provisioning": 3}), 200
    )
    assert updated["max_concurrent_provisioning"] == 3
    assert updated["config"]["platform"] == "api-test"  # left out: kept
    got = expect(api.get("/providers/lab-sim", admin), 200)
    assert got["max_concurrent_provisioning"] == 3
    expect(api.put("/providers/nope", admin, json={"kind": "sim", "config": {}}), 404)
    expect(api.get("/providers/nope", admin), 404)

    assert api.delete("/providers/lab-sim", admin).status_code == 204
    expect(api.get("/providers/lab-sim", admin), 404)
    expect(api.delete("/providers/lab-sim", admin), 404)


def test_provider_bad_input_changes_nothing(api: Api) -> None:
    admin = api.admin
    before = expect(api.get("/providers", admin), 200)
    good: dict[str, Any] = {"name": "p2", "kind": "sim", "config": {}}
    bad_creates = [
        ({**good, "name": "Bad_Name"}, "name"),
        ({**good, "kind": "vmware-of-dreams"}, "kind"),
        ({**good, "config": {"failure_rate": 2}}, "config.failure_rate"),
        ({**good, "max_concurrent_provisioning": 0}, "max_concurrent_provisioning"),
        ({**good, "max_concurrent_provisioning": "3"}, "max_concurrent_provisioning"),
        ({**good, "config": "not a mapping"}, "config"),
        ({"kind": "sim"}, "name"),
    ]
    for body, field in bad_creates:
        expect_invalid(api.post("/providers", admin, json=body), field)
    bad_updates = [
        ({"kind": "libvirt-nope"}, "kind"),
        ({"config": {"create_latency": -1}}, "config.create_latency"),
        ({"max_concurrent_provisioning": None}, "max_concurrent_provisioning"),
        ({"name": "other"}, "name"),
    ]
    for body, field in bad_updates:
        expect_invalid(api.put("/providers/sim", admin, json=body), field)
    assert expect(api.get("/providers", admin), 200) == before


def test_provider_in_use_cannot_be_deleted(api: Api) -> None:
    api.world.pool("lab")
    answer = expect(api.delete("/providers/sim", api.admin), 409)
    assert "used by" in answer["detail"]


def test_template_crud_and_revisions(api: Api) -> None:
    admin = api.admin
    listed = expect(api.get("/templates", admin), 200)
    assert [(t["name"], t["current_revision"]) for t in listed] == [("base", 1)]

    spec = {"image": "ubuntu-24.04", "vcpus": 2, "memory_mib": 2048}
    created = expect(api.post("/templates", admin, json={"name": "office", "spec": spec}), 201)
    assert created["current_revision"] == 1 and created["spec"]["vcpus"] == 2
    expect(api.post("/templates", admin, json={"name": "office", "spec": spec}), 409)

    same = expect(api.put("/templates/office", admin, json={"spec": spec}), 200)
    assert same["current_revision"] == 1  # unchanged spec: no new revision
    changed = expect(api.put("/templates/office", admin, json={"spec": {**spec, "vcpus": 4}}), 200)
    assert changed["current_revision"] == 2
    got = expect(api.get("/templates/office", admin), 200)
    assert (got["current_revision"], got["spec"]["vcpus"]) == (2, 4)
    revisions = expect(api.get("/templates/office/revisions", admin), 200)
    assert [(r["number"], r["spec"]["vcpus"]) for r in revisions] == [(2, 4), (1, 2)]
    expect(api.put("/templates/nope", admin, json={"spec": spec}), 404)
    expect(api.get("/templates/nope/revisions", admin), 404)

    assert api.delete("/templates/office", admin).status_code == 204
    expect(api.get("/templates/office", admin), 404)
    api.world.pool("lab")
    expect(api.delete("/templates/base", admin), 409)


def test_template_bad_input_changes_nothing(api: Api) -> None:
    admin = api.admin
    spec = {"image": "img"}
    for body, field in [
        ({"name": "t", "spec": {"vcpus": 1}}, "spec.image"),
        ({"name": "t", "spec": {"image": "img", "vcpus": 0}}, "spec.vcpus"),
        ({"name": "t", "spec": {"image": "img", "colour": "red"}}, "spec.colour"),
        ({"name": "t", "spec": ["image"]}, "spec"),
        ({"name": "T!", "spec": spec}, "name"),
        ({"name": "t"}, "spec"),
    ]:
        expect_invalid(api.post("/templates", admin, json=body), field)
    expect_invalid(
        api.put("/templates/base", admin, json={"spec": {"image": "x", "memory_mib": 1}}),
        "spec.memory_mib",
    )
    assert [t["name"] for t in expect(api.get("/templates", admin), 200)] == ["base"]
    assert len(expect(api.get("/templates/base/revisions", admin), 200)) == 1
