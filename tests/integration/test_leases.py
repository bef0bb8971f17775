"""Leases: several broker instances share the reconciler's work (SQLite and PostgreSQL).

Two instances here live in one test process with their own identities; the tests with real
separate processes are in tests/e2e/test_multiprocess.py.
"""

from __future__ import annotations

import subprocess
from collections import Counter

from sqlalchemy import select

from hotdesk.db.models import BrokerInstanceRow, DesktopRow, LeaseRow
from hotdesk.domain.states import DesktopState as S
from hotdesk.providers.base import Instance as VmInstance
from hotdesk.providers.base import InstanceRef, InstanceStatus
from hotdesk.reconciler.loop import Reconciler
from hotdesk.services import claims, leases, pools, reconcile
from hotdesk.services.leases import UPKEEP, Instance, refresh_leases
from tests.support import World


def make_pools(world: World, count: int, *, warm: int = 1) -> list[str]:
    names = [f"p{i}" for i in range(count)]
    for name in names:
        world.pool(name, warm=warm, max=warm + 2)
    return [pools.get_pool_row(world.ctx, world.admin, n).id for n in names]


def lease_holders(world: World) -> dict[str, str | None]:
    with world.ctx.db.read() as session:
        return {r.name: r.holder for r in session.scalars(select(LeaseRow))}


def test_two_instances_split_the_pools_fairly_and_disjointly(world: World) -> None:
    pool_ids = make_pools(world, 5)
    a, b = Instance.new(), Instance.new()

    first = refresh_leases(world.ctx, a)
    assert set(first.pools) == set(pool_ids), "alone, an instance holds every pool"
    assert first.singletons.keys() == {UPKEEP}

    joined = refresh_leases(world.ctx, b)
    assert joined.live_instances == 2 and joined.fair_share == 3
    assert joined.pools == {}, "leases still valid are not stolen"
    assert joined.singletons == {}, "the sweep runs in one instance only"

    rebalanced = refresh_leases(world.ctx, a)
    assert len(rebalanced.pools) == 3 and len(rebalanced.released) == 2
    taken = refresh_leases(world.ctx, b)
    assert set(taken.pools) == set(rebalanced.released)
    assert set(taken.pools).isdisjoint(rebalanced.pools)
    assert set(taken.pools) | set(rebalanced.pools) == set(pool_ids)


def test_busy_pools_are_given_back_last(world: World) -> None:
    pool_ids = sorted(make_pools(world, 4))
    a, b = Instance.new(), Instance.new()
    refresh_leases(world.ctx, a)
    refresh_leases(world.ctx, b)
    busy = pool_ids[:2]
    held = refresh_leases(world.ctx, a, busy_pools=busy)
    assert set(busy) <= set(held.pools)
    assert set(held.released) == set(pool_ids[2:])


def test_a_dead_instances_work_is_taken_over_after_one_lease_period(world: World) -> None:
    pool_ids = make_pools(world, 3)
    assert world.clock is not None
    a, b = Instance.new(), Instance.new()
    old = refresh_leases(world.ctx, a)
    refresh_leases(world.ctx, b)
    world.clock.advance(world.ctx.settings.lease_seconds - 1)  # a stops heartbeating here
    assert refresh_leases(world.ctx, b).pools == {}, "not before the lease expires"
    world.clock.advance(2)
    taken = refresh_leases(world.ctx, b)
    assert set(taken.pools) == set(pool_ids)
    assert taken.singletons.keys() == {UPKEEP}
    assert all(taken.pools[p] != old.pools[p] for p in pool_ids), "new tokens"


def test_a_result_computed_under_a_lost_lease_is_thrown_away(world: World) -> None:
    make_pools(world, 1)
    assert world.clock is not None
    a, b = Instance.new(), Instance.new()
    held = refresh_leases(world.ctx, a)
    [(pool_id, token)] = held.pools.items()
    work = reconcile.plan_pool_pass(world.ctx, pool_id, lease=token)
    [job] = work.creates
    world.clock.advance(world.ctx.settings.lease_seconds + 1)  # a hangs; b takes over
    refresh_leases(world.ctx, b)

    vm = VmInstance(
        ref=InstanceRef(name=job.request.name, platform_id="late-1"),
        status=InstanceStatus.BUILDING,
        tags={},
        ready=False,
    )
    reconcile.record_created(world.ctx, job, vm)
    with world.ctx.db.read() as session:
        desktop = session.get(DesktopRow, job.desktop_id)
        assert desktop is not None
        assert (desktop.state, desktop.platform_id) == (S.CREATING.value, None)
    assert reconcile.plan_pool_pass(world.ctx, pool_id, lease=token).creates == []


def test_a_restarted_broker_on_the_same_host_reclaims_its_dead_predecessors_leases(
    world: World,
) -> None:
    pool_ids = make_pools(world, 2)
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    me = Instance.new()
    predecessor = Instance(id="dead-one", hostname=me.hostname, pid=dead_pid.pid)
    refresh_leases(world.ctx, predecessor)
    restarted = refresh_leases(world.ctx, me)  # no waiting for expiry
    assert set(restarted.pools) == set(pool_ids)
    with world.ctx.db.read() as session:
        assert session.get(BrokerInstanceRow, "dead-one") is None


def test_a_clean_stop_gives_everything_back_at_once(world: World) -> None:
    pool_ids = make_pools(world, 2)
    a, b = Instance.new(), Instance.new()
    refresh_leases(world.ctx, a)
    leases.release_all(world.ctx, a)
    taken = refresh_leases(world.ctx, b)
    assert set(taken.pools) == set(pool_ids) and UPKEEP in taken.singletons
    assert [i.id for i in leases.live_instances(world.ctx)] == [b.id]


async def test_two_reconcilers_share_the_work_and_never_double_assign(world: World) -> None:
    users = [world.user(f"u{i}") for i in range(12)]
    for name in ("p0", "p1", "p2", "p3"):
        world.pool(name, warm=3, max=16, users=users)
    a = Reconciler(world.ctx, instance=Instance.new())
    b = Reconciler(world.ctx, instance=Instance.new())
    for _ in range(4):  # a few heartbeats: b joins, a gives back its extra share
        await a.leases.refresh()
        await b.leases.refresh()
    assert len(a.leases.pool_ids()) == 2 and len(b.leases.pool_ids()) == 2
    for _ in range(6):
        await a.run_pass()
        await b.run_pass()
        await a.settle()
        await b.settle()
    for user in users:
        for name in ("p0", "p1"):
            claims.connect(world.ctx, user, name)
    for _ in range(8):
        await a.run_pass()
        await b.run_pass()
        await a.settle()
        await b.settle()

    by_vm = Counter(name for name, _ in world.platform.create_calls)
    with world.ctx.db.read() as session:
        desktops = session.scalars(select(DesktopRow)).all()
    live = [d for d in desktops if d.state not in (S.DELETED.value, S.FAILED.value)]
    owners = Counter((d.pool_id, d.user_id) for d in live if d.user_id)
    assert max(owners.values()) == 1, "no user has two desktops in a pool"
    assert len(owners) == 12 * 2, "every claim has its desktop"
    assert max(by_vm.values()) == 1, "no VM was created twice"
    assert a.drivers.known() and b.drivers.known(), "both instances called the platform"
    assert lease_holders(world)[leases.pool_lease(live[0].pool_id)] is not None


def test_a_namesake_on_another_machine_is_not_taken_for_dead(world: World) -> None:
    make_pools(world, 2)
    gone = subprocess.Popen(["true"])
    gone.wait()
    me = Instance.new()
    elsewhere = me.hostname.rsplit("#", 2)[0] + "#otherboot#4026530000"  # same host name only
    namesake = Instance(id="namesake", hostname=elsewhere, pid=gone.pid)
    refresh_leases(world.ctx, namesake)
    assert refresh_leases(world.ctx, me).pools == {}, "its pid cannot be checked from here"
