"""S2, R4, P4 on SQLite and PostgreSQL: crashes, leaks, vanished VMs, failed deletes, drains.

The sim driver stands in for the platform; its VMs are inspected directly.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from hotdesk.db.models import DesktopRow, EventRow, PoolRow, SessionRow
from hotdesk.domain.claims import CardState
from hotdesk.domain.errors import Conflict, NotFound
from hotdesk.domain.names import TAG_DESKTOP, desktop_tags
from hotdesk.domain.states import DesktopState
from hotdesk.providers.base import InstanceRef
from hotdesk.providers.sim import SimConfig, SimProvider
from hotdesk.reconciler.loop import Reconciler
from hotdesk.services import claims, pools, reconcile
from tests.support import World

S = DesktopState


def pool_id_of(world: World, name: str = "lab") -> str:
    return pools.get_pool_row(world.ctx, world.admin, name).id


def all_desktops(world: World, pool_id: str) -> list[DesktopRow]:
    with world.ctx.db.read() as session:
        return list(
            session.scalars(
                select(DesktopRow)
                .where(DesktopRow.pool_id == pool_id)
                .order_by(DesktopRow.sequence)
            )
        )


def live(world: World, pool_id: str) -> list[DesktopRow]:
    return [d for d in all_desktops(world, pool_id) if d.state != S.DELETED.value]


def states(world: World, pool_id: str) -> Counter[str]:
    return Counter(d.state for d in live(world, pool_id))


def assert_platform_matches(world: World, pool_id: str) -> None:
    """Zero leaked VMs: the platform holds exactly the live desktops, each with its own tags."""
    desktops = {d.name: d for d in live(world, pool_id)}
    assert set(world.platform.vms) == set(desktops), "leaked or missing VMs"
    for name, vm in world.platform.vms.items():
        assert vm.tags[TAG_DESKTOP] == desktops[name].id
        assert desktops[name].platform_id in (None, vm.platform_id)
    ids = [vm.platform_id for vm in world.platform.vms.values()]
    assert len(ids) == len(set(ids))


def events(
    world: World, *, kind: str | None = None, desktop_id: str | None = None
) -> list[EventRow]:
    with world.ctx.db.read() as session:
        query = select(EventRow).order_by(EventRow.id)
        if kind is not None:
            query = query.where(EventRow.kind == kind)
        if desktop_id is not None:
            query = query.where(EventRow.desktop_id == desktop_id)
        return list(session.scalars(query))


# --- S2: killed between "intent committed" and "result applied" --------------------------


async def test_crash_between_intent_and_apply_leaks_nothing(world: World) -> None:
    world.pool("lab", warm=6, max=8, provision_concurrency=6)
    pool_id = pool_id_of(world)
    work = reconcile.plan_pool_pass(world.ctx, pool_id)  # intents committed: 6 x creating
    assert len(work.creates) == 6
    assert states(world, pool_id) == {S.CREATING.value: 6}

    # The old broker reached the platform for four of them, then died before recording.
    dead_brokers_driver = SimProvider(SimConfig(platform=world.platform.name))
    made = {}
    for job in work.creates[:4]:
        made[job.request.name] = (await dead_brokers_driver.create_desktop(job.request)).ref
    assert set(world.platform.vms) == set(made)
    assert all(d.platform_id is None for d in live(world, pool_id))

    # Its VMs are known desktops, not leaks: the sweep of the new broker leaves them alone.
    restarted = Reconciler(world.ctx)
    world.reconciler = restarted
    assert world.clock is not None
    world.clock.advance(1)
    await restarted.upkeep.sweep()
    await restarted.upkeep.sweep()
    assert set(world.platform.vms) == set(made)

    await restarted.converge()

    assert states(world, pool_id) == {S.READY.value: 6}, "every desktop ready, pool at warm"
    assert_platform_matches(world, pool_id)
    for d in live(world, pool_id):
        if d.name in made:  # adopted, not created twice
            assert d.platform_id == made[d.name].platform_id
    created_names = [name for name, _ in world.platform.create_calls]
    assert Counter(created_names).most_common(1)[0][1] <= 2  # at most the lost call + one retry
    assert len(world.platform.vms) == 6


async def test_crash_between_platform_delete_and_apply(world: World) -> None:
    alice = world.user("alice")
    world.pool("lab", warm=1, max=2, users=[alice])
    pool_id = pool_id_of(world)
    await world.reconciler.converge()
    claims.connect(world.ctx, alice, "lab")
    claims.release(world.ctx, alice, "lab")
    work = reconcile.plan_pool_pass(world.ctx, pool_id)
    assert len(work.deletes) == 1
    dead_brokers_driver = SimProvider(SimConfig(platform=world.platform.name))
    assert (await dead_brokers_driver.delete_desktop(work.deletes[0].ref)).done
    assert states(world, pool_id)[S.DELETING.value] == 1  # never recorded

    await Reconciler(world.ctx).converge()  # a delete of a missing VM is success

    gone = next(d for d in all_desktops(world, pool_id) if d.id == work.deletes[0].desktop_id)
    assert gone.state == S.DELETED.value
    assert states(world, pool_id) == {S.READY.value: 1}
    assert_platform_matches(world, pool_id)


# --- R4: leaks and vanished VMs ----------------------------------------------------------


async def test_tagged_unknown_vm_is_deleted_on_the_second_sweep_not_the_first(world: World) -> None:
    world.pool("lab", warm=1, max=2)
    pool_id = pool_id_of(world)
    await world.reconciler.converge()
    mine = desktop_tags(broker_id=world.ctx.broker_id, pool_id=pool_id, desktop_id="ghost")
    world.platform.inject_leak("lab-leak", mine)
    theirs = desktop_tags(broker_id="another-broker", pool_id="p", desktop_id="d")
    world.platform.inject_leak("not-ours", theirs)
    world.platform.inject_leak("untagged", {})

    await world.reconciler.upkeep.sweep()
    assert "lab-leak" in world.platform.vms, "deleted after one sweep"
    await world.reconciler.upkeep.sweep()
    assert "lab-leak" not in world.platform.vms, "still there after two sweeps"
    for _ in range(2):
        await world.reconciler.upkeep.sweep()
    assert {"not-ours", "untagged"} <= set(world.platform.vms)  # never another broker's
    assert states(world, pool_id) == {S.READY.value: 1}  # the pool's own desktop is untouched
    leak_events = events(world, kind="leak-deleted")
    assert [e.data["vm"] for e in leak_events if e.data] == ["lab-leak"]


async def test_leak_must_be_seen_on_consecutive_sweeps(world: World) -> None:
    world.pool("lab", warm=1, max=2)
    await world.reconciler.converge()
    tags = desktop_tags(broker_id=world.ctx.broker_id, pool_id="p", desktop_id="ghost")
    world.platform.inject_leak("flicker", tags)
    await world.reconciler.upkeep.sweep()
    del world.platform.vms["flicker"]  # gone on the next sweep: forgotten
    await world.reconciler.upkeep.sweep()
    world.platform.inject_leak("flicker", tags)
    await world.reconciler.upkeep.sweep()
    assert "flicker" in world.platform.vms  # seen once since it came back
    await world.reconciler.upkeep.sweep()
    assert "flicker" not in world.platform.vms


async def test_sweep_during_an_outage_deletes_nothing_and_marks_nothing_lost(
    world: World,
) -> None:
    world.pool("lab", warm=2, max=2)
    pool_id = pool_id_of(world)
    await world.reconciler.converge()
    world.platform.outage = True
    assert world.clock is not None
    world.clock.advance(1)
    await world.reconciler.upkeep.sweep()
    await world.reconciler.upkeep.sweep()
    assert states(world, pool_id) == {S.READY.value: 2}
    assert len(world.platform.vms) == 2


@pytest.mark.parametrize("held", [False, True])
async def test_vm_deleted_behind_the_brokers_back_is_lost_then_replaced(
    world: World, held: bool
) -> None:
    alice = world.user("alice")
    world.pool("lab", warm=2, max=3, users=[alice])
    pool_id = pool_id_of(world)
    await world.reconciler.converge()
    victim_id = claims.connect(world.ctx, alice, "lab").desktop_id if held else None
    if victim_id is None:
        victim_id = live(world, pool_id)[0].id
    victim = next(d for d in live(world, pool_id) if d.id == victim_id)
    del world.platform.vms[victim.name]  # someone deleted the VM by hand
    assert world.clock is not None
    world.clock.advance(1)

    await world.reconciler.upkeep.sweep()

    trail = [
        (e.from_state, e.to_state) for e in events(world, desktop_id=victim_id) if e.kind == "state"
    ]
    expected_from = S.CONNECTED.value if held else S.READY.value
    assert trail[-2:] == [(expected_from, S.LOST.value), (S.LOST.value, S.DELETING.value)]
    await world.reconciler.converge()
    gone = next(d for d in all_desktops(world, pool_id) if d.id == victim_id)
    assert gone.state == S.DELETED.value
    assert states(world, pool_id) == {S.READY.value: 2}  # replaced: the pool is at warm
    assert_platform_matches(world, pool_id)
    with world.ctx.db.read() as session:
        still_open = session.scalars(
            select(SessionRow).where(
                SessionRow.desktop_id == victim_id, SessionRow.ended_at.is_(None)
            )
        ).all()
    assert still_open == [], "the session on a lost desktop is over"
    if held:
        assert claims.my_card(world.ctx, alice, "lab").state is CardState.UNASSIGNED
        again = claims.connect(world.ctx, alice, "lab")  # she gets a fresh desktop
        assert again.state is CardState.CONNECTED and again.desktop_id != victim_id


async def test_a_just_created_desktop_is_not_taken_for_lost(world: World) -> None:
    """The listing is taken before the database is read: a VM made in between is no loss."""
    world.pool("lab", warm=1, max=2)
    pool_id = pool_id_of(world)
    await world.reconciler.converge()
    # no time passes: the desktop's state_since equals the listing time
    await world.reconciler.upkeep.sweep()
    assert states(world, pool_id) == {S.READY.value: 1}


# --- delete failures, drain ---------------------------------------------------------------


async def test_delete_failing_during_an_outage_is_retried_later(world: World) -> None:
    alice = world.user("alice")
    world.pool("lab", warm=1, max=2, users=[alice])
    pool_id = pool_id_of(world)
    await world.reconciler.converge()
    desktop_id = claims.connect(world.ctx, alice, "lab").desktop_id
    name = next(d.name for d in live(world, pool_id) if d.id == desktop_id)
    world.platform.outage = True
    claims.release(world.ctx, alice, "lab")
    for _ in range(3):
        await world.reconciler.run_pass()
        await world.reconciler.settle()
    stuck = next(d for d in live(world, pool_id) if d.id == desktop_id)
    assert stuck.state == S.DELETING.value
    assert stuck.last_error and "outage" in stuck.last_error
    assert name in world.platform.vms
    assert any(e.kind == "retry" for e in events(world, desktop_id=desktop_id))

    world.platform.outage = False
    assert world.clock is not None
    world.clock.advance(10)
    await world.reconciler.converge()
    assert name not in world.platform.vms
    assert all(
        d.state == S.DELETED.value for d in all_desktops(world, pool_id) if d.id == desktop_id
    )
    assert states(world, pool_id) == {S.READY.value: 1}
    assert_platform_matches(world, pool_id)


async def test_pool_delete_drains(world: World) -> None:
    alice, bob, carol = (world.user(n) for n in ("alice", "bob", "carol"))
    world.pool("lab", warm=1, max=3, retention=60, users=[alice, bob, carol])
    pool_id = pool_id_of(world)
    await world.reconciler.converge()
    a = claims.connect(world.ctx, alice, "lab").desktop_id
    await world.reconciler.converge()
    b = claims.connect(world.ctx, bob, "lab").desktop_id
    claims.disconnect(world.ctx, bob, "lab")
    await world.reconciler.converge()
    assert states(world, pool_id) == {
        S.CONNECTED.value: 1,
        S.DISCONNECTED.value: 1,
        S.READY.value: 1,
    }

    pools.delete_pool(world.ctx, world.admin, "lab")
    await world.reconciler.converge()

    assert {d.id: d.state for d in live(world, pool_id)} == {
        a: S.CONNECTED.value,
        b: S.DISCONNECTED.value,
    }, "idle desktops are destroyed, assigned ones finish"
    assert_platform_matches(world, pool_id)
    with pytest.raises(Conflict):
        claims.connect(world.ctx, carol, "lab")  # no new claims
    assert claims.connect(world.ctx, bob, "lab").desktop_id == b  # holders keep working
    with world.ctx.db.read() as session:
        row = session.get(PoolRow, pool_id)
        assert row is not None and row.draining and row.deleted_at is None

    claims.disconnect(world.ctx, bob, "lab")
    assert world.clock is not None
    world.clock.advance(61)
    await world.reconciler.converge()
    assert [d.id for d in live(world, pool_id)] == [a]  # bob's expired; alice still connected
    with world.ctx.db.read() as session:
        assert session.get(PoolRow, pool_id).deleted_at is None  # type: ignore[union-attr]

    claims.release(world.ctx, alice, "lab")
    await world.reconciler.converge()
    assert live(world, pool_id) == []
    assert world.platform.vms == {}
    with world.ctx.db.read() as session:
        row = session.get(PoolRow, pool_id)
        assert row is not None and row.deleted_at is not None
    with pytest.raises(NotFound):
        pools.get_pool_row(world.ctx, world.admin, "lab")
    assert len(events(world, kind="pool-deleted")) == 1
    world.pool("lab", warm=1, max=1)  # the name is free again
    await world.reconciler.converge()
    assert len(world.platform.vms) == 1


async def test_pool_delete_closes_the_queue(world: World) -> None:
    alice, dave = world.user("alice"), world.user("dave")
    world.pool("lab", warm=1, max=1, users=[alice, dave])
    await world.reconciler.converge()
    claims.connect(world.ctx, alice, "lab")
    assert claims.connect(world.ctx, dave, "lab").state is CardState.WAITING
    pools.delete_pool(world.ctx, world.admin, "lab")
    assert claims.my_card(world.ctx, dave, "lab").state is CardState.UNASSIGNED
    with pytest.raises(Conflict):
        claims.connect(world.ctx, dave, "lab")
    claims.release(world.ctx, alice, "lab")
    await world.reconciler.converge()
    assert world.platform.vms == {}


async def test_platform_call_refs_point_at_the_right_vm(world: World) -> None:
    """Deterministic names (rule 1): the n-th desktop of a pool is ``<pattern>-n``."""
    world.pool("lab", warm=3, max=3, sequence_start=7)
    pool_id = pool_id_of(world)
    await world.reconciler.converge()
    assert [d.name for d in live(world, pool_id)] == ["lab-7", "lab-8", "lab-9"]
    driver = world.reconciler.drivers.get(live(world, pool_id)[0].provider_id)
    found = await driver.get_desktop(InstanceRef(name="lab-8"))
    assert found is not None and found.tags[TAG_DESKTOP] == live(world, pool_id)[1].id
