"""G1/G2: the guest agent protocol, through the API, on both databases."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from hotdesk.api.app import create_app
from hotdesk.services import agent, catalog, claims
from hotdesk.services.reconcile import plan_pool_pass
from tests.support import World


def _agent_pool(world: World, **extra: object) -> None:
    catalog.save_template(
        world.ctx,
        world.admin,
        "base",
        {"image": "base-image", "memory_mib": 512, "has_agent": True},
    )
    world.ctx.settings.agent_url = "http://10.0.2.2:8080"


async def test_a_desktop_with_an_agent_is_ready_only_when_the_agent_says_so(world: World) -> None:
    _agent_pool(world)
    alice = world.user("alice")
    world.pool("lab", warm=1, max=2, users=[alice])
    await world.reconciler.converge()
    desktop = claims.connect(world.ctx, alice, "lab")
    assert desktop.state.value == "preparing"  # running on the platform, agent silent
    assert desktop.desktop_id is not None

    client = TestClient(create_app(world.ctx))
    secret = agent.context_secret(world.ctx)
    bad = client.post("/api/v1/agent/ready", json={"desktop": desktop.desktop_id, "token": "x"})
    assert bad.status_code == 401
    token = agent.agent_token(secret, desktop.desktop_id)
    ok = client.post("/api/v1/agent/ready", json={"desktop": desktop.desktop_id, "token": token})
    assert ok.status_code == 200, ok.text
    await world.reconciler.converge()
    assert claims.connect(world.ctx, alice, "lab").state.value == "connected"


async def test_create_requests_carry_the_agent_bootstrap(world: World) -> None:
    _agent_pool(world)
    world.pool("lab", warm=1, max=1)
    work = plan_pool_pass(world.ctx, _pool_id(world))
    (job,) = work.creates
    assert job.request.agent is not None
    assert job.request.agent.url == "http://10.0.2.2:8080"
    assert agent.verify_agent(
        agent.context_secret(world.ctx), job.desktop_id, job.request.agent.token
    )


async def test_login_on_assignment_and_logout_end_the_session(world: World) -> None:
    _agent_pool(world)
    alice = world.user("alice")
    world.pool("lab", warm=1, max=1, users=[alice], login_on_assignment=True)
    await world.reconciler.converge()
    card = claims.connect(world.ctx, alice, "lab")
    assert card.desktop_id is not None
    token = agent.agent_token(agent.context_secret(world.ctx), card.desktop_id)
    client = TestClient(create_app(world.ctx))
    body = {"desktop": card.desktop_id, "token": token}
    reply = client.post("/api/v1/agent/ready", json=body).json()
    assert reply["login"] == "alice"  # G2: log alice in automatically
    await world.reconciler.converge()
    assert claims.connect(world.ctx, alice, "lab").state.value == "connected"
    assert (
        client.post("/api/v1/agent/login", json={**body, "username": "alice"}).json()["login"]
        is None
    )
    client.post("/api/v1/agent/logout", json={**body, "username": "alice"})
    assert claims.my_card(world.ctx, alice, "lab").state.value == "disconnected"
    assert agent.open_session_count(world.ctx, card.desktop_id) == 0


@pytest.mark.parametrize("event", ["reboot", "READY"])
async def test_unknown_events_are_refused(world: World, event: str) -> None:
    _agent_pool(world)
    world.pool("lab", warm=1, max=1)
    await world.reconciler.converge()
    desktop_id = _any_desktop(world)
    token = agent.agent_token(agent.context_secret(world.ctx), desktop_id)
    client = TestClient(create_app(world.ctx))
    response = client.post(f"/api/v1/agent/{event}", json={"desktop": desktop_id, "token": token})
    assert response.status_code == 422
    assert response.json()["field"] == "event"


def _pool_id(world: World) -> str:
    from hotdesk.services.pools import get_pool_row

    return get_pool_row(world.ctx, world.admin, "lab").id


def _any_desktop(world: World) -> str:
    from hotdesk.services.pools import list_desktops

    return list_desktops(world.ctx, world.admin, "lab")[0][0].id
