"""The basic life of a desktop on both databases."""

from __future__ import annotations

from hotdesk.domain.claims import CardState
from hotdesk.services import claims, pools
from tests.support import World


async def test_claim_disconnect_expire_replenish(world: World) -> None:
    alice = world.user("alice")
    world.pool("lab", warm=2, max=3, retention=60, users=[alice])
    await world.reconciler.converge()
    assert pools.pool_status(world.ctx, world.admin, "lab").counts.ready == 2

    card = claims.connect(world.ctx, alice, "lab")
    assert card.state is CardState.CONNECTED
    await world.reconciler.converge()
    counts = pools.pool_status(world.ctx, world.admin, "lab").counts
    assert (counts.ready, counts.assigned_connected, counts.total) == (2, 1, 3)

    claims.disconnect(world.ctx, alice, "lab")
    assert world.clock is not None
    world.clock.advance(59)
    await world.reconciler.converge()
    assert claims.connect(world.ctx, alice, "lab").desktop_id == card.desktop_id  # reconnect
    claims.disconnect(world.ctx, alice, "lab")
    world.clock.advance(61)
    await world.reconciler.converge()
    after = claims.my_card(world.ctx, alice, "lab")
    assert after.state is CardState.UNASSIGNED
    assert card.desktop_id is not None and world.platform.vms.get("lab-1") is None
    assert pools.pool_status(world.ctx, world.admin, "lab").counts.ready == 2
