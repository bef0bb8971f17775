"""T3 on the broker side: publish once per revision and datastore, progress, garbage collection."""

from __future__ import annotations

from hotdesk.services import catalog, claims, pools
from tests.support import FakeClock, World, make_world


def _publishing_world(url: str, clock: FakeClock) -> World:
    return make_world(url, clock=clock, sim={"publishes_images": True})


async def test_an_image_is_published_once_and_reported_in_the_pool_status(
    database_url: str, clock: FakeClock
) -> None:
    world = _publishing_world(database_url, clock)
    world.pool("lab", warm=3, max=5, provision_concurrency=3)
    await world.reconciler.converge()
    status = pools.pool_status(world.ctx, world.admin, "lab")
    assert status.counts.ready == 3
    assert len(world.platform.publish_calls) == 1  # three clones, one publish
    (image,) = status.images
    assert image.state == "ready" and image.ref in world.platform.bases
    assert all(vm.base == image.ref for vm in world.platform.vms.values())
    kinds = [e.kind for e in pools.list_events(world.ctx, world.admin, pool_name="lab")]
    assert "image-publishing" in kinds and "image-published" in kinds
    world.ctx.db.dispose()


async def test_an_unused_base_is_removed_after_recreate_and_the_used_one_kept(
    database_url: str, clock: FakeClock
) -> None:
    world = _publishing_world(database_url, clock)
    alice = world.user("alice")
    world.pool("lab", warm=2, max=4, users=[alice])
    await world.reconciler.converge()
    claims.connect(world.ctx, alice, "lab")
    catalog.save_template(world.ctx, world.admin, "base", {"image": "base-image-v2"})
    pools.recreate_pool(world.ctx, world.admin, "lab")
    await world.reconciler.converge()
    await world.reconciler.upkeep.sweep()
    # alice's desktop still uses revision 1: both bases stay
    assert len(world.platform.bases) == 2
    claims.release(world.ctx, alice, "lab")
    await world.reconciler.converge()
    await world.reconciler.upkeep.sweep()
    assert list(world.platform.bases.values()) == ["base-image-v2"]
    assert len(pools.pool_status(world.ctx, world.admin, "lab").images) == 1
    world.ctx.db.dispose()


async def test_a_failed_publish_backs_off_and_is_visible(
    database_url: str, clock: FakeClock
) -> None:
    world = _publishing_world(database_url, clock)
    world.pool("lab", warm=1, max=2)
    world.platform.outage = True
    await world.reconciler.run_pass()
    await world.reconciler.settle()
    status = pools.pool_status(world.ctx, world.admin, "lab")
    assert status.counts.ready == 0 and status.provision_failures >= 1
    world.platform.outage = False
    clock.advance(600)
    await world.reconciler.converge()
    assert pools.pool_status(world.ctx, world.admin, "lab").counts.ready == 1
    world.ctx.db.dispose()
