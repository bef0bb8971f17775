"""Focused checks of T1, T2, R3 and C1 through the real services and reconciler, both databases."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from itertools import pairwise

from sqlalchemy import select

from hotdesk.db.models import DesktopRow, TemplateRow
from hotdesk.domain.states import DesktopState
from hotdesk.services import catalog, claims, pools
from hotdesk.services.directory import save_group, save_organization
from hotdesk.services.pools import EntitlementLine
from hotdesk.settings import ReconcilerSettings
from tests.support import FakeClock, World, make_world

S = DesktopState


def live(world: World, pool: str = "lab") -> list[DesktopRow]:
    pool_id = pools.get_pool_row(world.ctx, world.admin, pool).id
    with world.ctx.db.read() as session:
        return list(
            session.scalars(
                select(DesktopRow)
                .where(DesktopRow.pool_id == pool_id, DesktopRow.state != S.DELETED.value)
                .order_by(DesktopRow.sequence)
            )
        )


def current_revision(world: World, template: str = "base") -> str:
    with world.ctx.db.read() as session:
        row = session.scalar(select(TemplateRow).where(TemplateRow.name == template))
        assert row is not None and row.current_revision_id is not None
        return row.current_revision_id


async def _pool_with_every_kind_of_holder(world: World) -> dict[str, str]:
    """lab: one connected, one disconnected, one assigned (booted for its user, who has not
    connected yet) and two idle ready desktops. Returns desktop id by role."""
    users = {n: world.user(n) for n in ("connected", "disconnected", "assigned")}
    world.pool("lab", warm=2, max=8, retention=600, users=list(users.values()))
    await world.reconciler.converge()
    ids = {role: claims.connect(world.ctx, user, "lab").desktop_id for role, user in users.items()}
    claims.disconnect(world.ctx, users["disconnected"], "lab")
    await world.reconciler.converge()  # "assigned" was created on demand and has booted
    return {k: v for k, v in ids.items() if v is not None}


async def test_template_change_keeps_existing_revisions_and_recreate_replaces_only_idle(
    world: World,
) -> None:
    held = await _pool_with_every_kind_of_holder(world)
    old_rev = current_revision(world)
    before = {d.id: d for d in live(world)}
    states = {role: before[i].state for role, i in held.items()}
    assert states == {
        "connected": S.CONNECTED.value,
        "disconnected": S.DISCONNECTED.value,
        "assigned": S.ASSIGNED.value,
    }
    idle = [d.id for d in before.values() if d.user_id is None]
    assert len(idle) == 2 and all(before[i].state == S.READY.value for i in idle)

    catalog.save_template(world.ctx, world.admin, "base", {"image": "base-image-v2"})
    new_rev = current_revision(world)
    assert new_rev != old_rev
    await world.reconciler.converge()

    # T1: a template change is smooth: nothing existing is rebuilt or touched
    after = {d.id: d for d in live(world)}
    assert set(after) == set(before)
    assert {d.template_revision_id for d in after.values()} == {old_rev}

    replaced = pools.recreate_pool(world.ctx, world.admin, "lab")
    assert sorted(replaced) == sorted(idle), "T2: Recreate takes only idle stale desktops"
    await world.reconciler.converge()

    final = {d.id: d for d in live(world)}
    for role, desktop_id in held.items():  # assigned desktops are never touched
        assert final[desktop_id].template_revision_id == old_rev, role
        assert final[desktop_id].user_id == before[desktop_id].user_id, role
    assert final[held["connected"]].state == S.CONNECTED.value
    assert final[held["disconnected"]].state == S.DISCONNECTED.value
    new_idle = [d for d in final.values() if d.user_id is None]
    assert len(new_idle) == 2
    assert {d.template_revision_id for d in new_idle} == {new_rev}
    assert not set(idle) & set(final)
    for desktop_id in idle:
        assert desktop_id not in world.platform.vms


async def test_new_desktops_use_the_new_revision_after_a_claim(world: World) -> None:
    alice = world.user("alice")
    world.pool("lab", warm=1, max=3, users=[alice])
    await world.reconciler.converge()
    old_rev = current_revision(world)
    catalog.save_template(world.ctx, world.admin, "base", {"image": "base-image-v2"})
    new_rev = current_revision(world)
    card = claims.connect(world.ctx, alice, "lab")  # takes the prepared old-revision desktop
    await world.reconciler.converge()  # replenishes
    revisions = {d.id: d.template_revision_id for d in live(world)}
    assert revisions.pop(card.desktop_id or "") == old_rev
    assert list(revisions.values()) == [new_rev]


async def test_recreate_also_removes_failed_desktops(world: World) -> None:
    world.pool("lab", warm=2, max=3)
    world.platform.fail_next_creates = 10**6
    for _ in range(4):
        await world.reconciler.run_pass()
        await world.reconciler.settle()
        assert world.clock is not None
        world.clock.advance(30)
    failed = [d.id for d in live(world) if d.state == S.FAILED.value]
    assert failed
    world.platform.fail_next_creates = 0
    assert set(pools.recreate_pool(world.ctx, world.admin, "lab")) >= set(failed)
    await world.reconciler.converge()
    assert Counter(d.state for d in live(world)) == {S.READY.value: 2}


# --- R3: failures back off; the pool says provisioning is failing ----------------------------


async def test_repeated_create_failures_back_off_instead_of_a_hot_loop(
    database_url: str,
) -> None:
    clock = FakeClock()
    settings = ReconcilerSettings(
        backoff_base_seconds=2,
        backoff_max_seconds=300,
        max_create_attempts=3,
        failing_after=3,
        failed_keep_seconds=600,
    )
    world = make_world(database_url, clock=clock, settings=settings)
    try:
        world.pool("lab", warm=2, max=10, provision_concurrency=2)
        world.platform.fail_next_creates = 10**9
        tick, minutes = 15, 25
        calls_at: list[float] = []
        for step in range(minutes * 60 // tick):
            before = len(world.platform.create_calls)
            await world.reconciler.run_pass()
            await world.reconciler.settle()
            calls_at += [step * tick] * (len(world.platform.create_calls) - before)
            clock.advance(tick)

        hot_loop = 2 * minutes * 60 // tick  # two creates on every pass without backoff
        assert len(calls_at) <= hot_loop // 4, f"{len(calls_at)} create calls in {minutes} min"
        last_ten_minutes = [t for t in calls_at if t >= (minutes - 10) * 60]
        assert len(last_ten_minutes) <= 2 * 3 * 2, "backoff reaches its ceiling"
        gaps = [b - a for a, b in pairwise(calls_at)]
        assert max(gaps) >= 250, "the pause between rounds grows toward backoff_max"

        status = pools.pool_status(world.ctx, world.admin, "lab")
        assert status.provisioning_failing
        assert status.provisioning_error and "simulated create failure" in status.provisioning_error
        assert status.counts.failed >= 1 and status.counts.ready == 0
        assert status.counts.total <= 10

        world.platform.fail_next_creates = 0  # the platform recovers
        clock.advance(settings.backoff_max_seconds + 1)
        await world.reconciler.converge()
        status = pools.pool_status(world.ctx, world.admin, "lab")
        assert status.counts.ready == 2
        assert not status.provisioning_failing and status.provisioning_error is None
        clock.advance(settings.failed_keep_seconds + 1)  # failed ones kept for inspection, then go
        await world.reconciler.converge()
        status = pools.pool_status(world.ctx, world.admin, "lab")
        assert status.counts.failed == 0 and status.counts.total == 2
    finally:
        world.ctx.db.dispose()


async def test_desktop_retries_with_backoff_then_fails(world: World) -> None:
    world.pool("lab", warm=1, max=1)
    world.platform.fail_next_creates = 2  # two failures, then the platform works
    assert world.clock is not None
    await world.reconciler.run_pass()
    await world.reconciler.settle()
    (d,) = live(world)
    assert (d.state, d.attempts) == (S.CREATING.value, 1)
    assert d.next_attempt_at is not None and d.next_attempt_at > world.clock()
    calls = len(world.platform.create_calls)
    await world.reconciler.run_pass()  # not due yet: no platform call
    await world.reconciler.settle()
    assert len(world.platform.create_calls) == calls
    world.clock.advance(world.ctx.settings.backoff_max_seconds)
    await world.reconciler.converge()
    world.clock.advance(world.ctx.settings.backoff_max_seconds)
    await world.reconciler.converge()
    (d,) = live(world)
    assert d.state == S.READY.value and d.attempts == 2
    assert len(world.platform.create_calls) == 3


# --- C1 through the database ------------------------------------------------------------------


async def test_effective_users_are_listed_once(world: World) -> None:
    save_organization(world.ctx, world.admin, "school", parent=None)
    save_organization(world.ctx, world.admin, "class-a", parent="school")
    world.user("ann", organization="class-a")
    world.user("bob", organization="class-a")
    world.user("cid", organization="school")
    world.user("dan")
    world.user("eve")
    save_group(world.ctx, world.admin, "helpers", ["ann", "dan"])
    world.pool("lab", warm=1, max=2)
    lines = [
        EntitlementLine("user", "ann"),
        EntitlementLine("group", "helpers"),
        EntitlementLine("organization", "school", include_suborganizations=True),
    ]
    pools.set_entitlements(world.ctx, world.admin, "lab", lines)
    _, users = pools.get_entitlements(world.ctx, world.admin, "lab")
    assert users == ["ann", "bob", "cid", "dan"]  # de-duplicated, sorted, eve not entitled
    pools.set_entitlements(
        world.ctx, world.admin, "lab", [EntitlementLine("organization", "school")]
    )
    _, users = pools.get_entitlements(world.ctx, world.admin, "lab")
    assert users == ["cid"]  # sub-organisations only when asked


async def test_retention_deadline_shown_on_the_card(world: World) -> None:
    """L4: after disconnect the card tells until when the desktop is kept."""
    alice = world.user("alice")
    world.pool("lab", warm=1, max=1, retention=1800, users=[alice])
    await world.reconciler.converge()
    card = claims.connect(world.ctx, alice, "lab")
    assert card.deadline is None and card.retention_seconds == 1800  # connected: no clock
    assert world.clock is not None
    world.clock.advance(42)
    left_at = world.clock()
    assert claims.disconnect(world.ctx, alice, "lab").deadline == left_at + timedelta(seconds=1800)
    world.clock.advance(600)
    assert claims.my_card(world.ctx, alice, "lab").deadline == left_at + timedelta(seconds=1800)
