"""Applying the example file: idempotent; an invalid edit keeps the last good pool."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from argon2 import PasswordHasher

from hotdesk.api.app import create_app
from hotdesk.api.routers import apply as apply_router
from hotdesk.services import auth, catalog, pools
from hotdesk.services.apply import ApplyError, apply_documents
from tests.support import World

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*install `httpx2`")
    from fastapi.testclient import TestClient

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lab.yaml"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id with the cheapest parameters (the example hashes four passwords)."""
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def lab(world: World) -> list[dict[str, Any]]:
    """The example's documents, its simulated provider pointed at this test's platform."""
    documents: list[dict[str, Any]] = list(yaml.safe_load_all(EXAMPLE.read_text()))
    platform = catalog.get_provider(world.ctx, world.admin, "sim").config["platform"]
    for doc in documents:
        if doc["kind"] == "Provider":
            doc["spec"]["config"].update(platform=platform, create_latency=0, boot_latency=0)
    return documents


def actions(results: list[Any]) -> dict[str, str]:
    """``kind/name`` -> action."""
    return {f"{r.kind.lower()}/{r.name}": r.action for r in results}


async def test_applying_the_example_twice_is_idempotent(
    world: World, lab: list[dict[str, Any]]
) -> None:
    first = actions(apply_documents(world.ctx, world.admin, lab))
    assert len(first) == len(lab) == 10
    assert set(first.values()) == {"created"}
    generation = pools.get_pool_row(world.ctx, world.admin, "lab").generation

    second = actions(apply_documents(world.ctx, world.admin, list(reversed(lab))))
    assert second == dict.fromkeys(first, "unchanged")
    assert pools.get_pool_row(world.ctx, world.admin, "lab").generation == generation

    lines, users = pools.get_entitlements(world.ctx, world.admin, "lab")
    assert users == ["bart", "helper", "lisa", "teacher"]
    assert {(line.kind, line.name) for line in lines} == {
        ("organization", "school"),
        ("group", "lab-helpers"),
    }
    await world.reconciler.converge()
    status = pools.pool_status(world.ctx, world.admin, "lab")
    assert (status.counts.ready, status.warm, status.max) == (2, 2, 6)


async def test_an_invalid_edit_leaves_the_last_good_pool(
    world: World, lab: list[dict[str, Any]]
) -> None:
    apply_documents(world.ctx, world.admin, lab)
    good = pools.get_pool_row(world.ctx, world.admin, "lab")

    edited = copy.deepcopy(lab)
    pool = next(d for d in edited if d["kind"] == "Pool")
    pool["spec"]["warm_desktops"] = 10
    with pytest.raises(ApplyError) as info:
        apply_documents(world.ctx, world.admin, edited)
    assert str(info.value) == (
        'document 10 (Pool "lab"): spec.warm_desktops: warm must be between 1 and max (6)'
    )
    after = pools.get_pool_row(world.ctx, world.admin, "lab")
    assert (after.generation, after.spec) == (good.generation, good.spec)

    pool["spec"]["warm_desktops"] = 3
    result = actions(apply_documents(world.ctx, world.admin, edited))
    assert result["pool/lab"] == "updated"
    assert [k for k, v in result.items() if v != "unchanged"] == ["pool/lab"]
    assert pools.pool_status(world.ctx, world.admin, "lab").warm == 3


def test_a_template_edit_is_a_new_revision(world: World, lab: list[dict[str, Any]]) -> None:
    apply_documents(world.ctx, world.admin, lab)
    template = next(d for d in lab if d["kind"] == "Template")
    template["spec"]["memory_mib"] = 1024
    result = actions(apply_documents(world.ctx, world.admin, lab))
    assert result["template/lab-desktop"] == "updated"
    assert result["pool/lab"] == "unchanged"
    _, revisions = catalog.get_template(world.ctx, world.admin, "lab-desktop")
    assert [r.number for r in revisions] == [2, 1]


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    """The API app of the world's broker (the apply router included if the app lacks it)."""
    app = create_app(world.ctx)
    if not any(getattr(r, "path", "") == "/api/v1/apply" for r in app.routes):
        app.include_router(apply_router.router, prefix="/api/v1")
    with TestClient(app) as test_client:
        yield test_client


def test_apply_over_http(world: World, client: TestClient, lab: list[dict[str, Any]]) -> None:
    admin = {"Authorization": f"Bearer {world.token(world.admin)}"}
    answer = client.post("/api/v1/apply", json={"documents": lab}, headers=admin)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert results[0] == {"kind": "Organization", "name": "school", "action": "created", "index": 1}
    assert {r["action"] for r in results} == {"created"}

    lab[-1]["spec"]["retention"] = "half an hour"
    refused = client.post("/api/v1/apply", json={"documents": lab}, headers=admin)
    assert refused.status_code == 422
    body = refused.json()
    assert body["field"] == "spec.retention"
    assert body["document"] == {"index": 10, "kind": "Pool", "name": "lab"}
    assert body["detail"].startswith('document 10 (Pool "lab"): spec.retention: ')

    pupil = world.user("pupil")
    user = {"Authorization": f"Bearer {world.token(pupil)}"}
    assert client.post("/api/v1/apply", json={"documents": []}, headers=user).status_code == 403
    assert client.post("/api/v1/apply", json={"documents": []}).status_code == 401
    not_a_list = client.post("/api/v1/apply", json={"documents": {}}, headers=admin)
    assert not_a_list.status_code == 422
