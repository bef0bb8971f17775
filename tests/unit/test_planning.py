"""plan_pool and friends: R1 (warm, max, concurrency), L2 (retention), P4 (drain), T2, T4."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from hotdesk.domain.pools import (
    DesktopView,
    PlanInput,
    count_desktops,
    held_by,
    is_stale_revision,
    least_loaded_datastore,
    plan_pool,
    recreate_targets,
    retention_deadline,
)
from hotdesk.domain.states import LIVE_STATES, PROVISIONING_STATES, DesktopState

S = DesktopState
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_ids = itertools.count(1)


def desk(
    state: DesktopState,
    *,
    user: str | None = None,
    rev: str | None = "r2",
    idle_for: float | None = None,
    state_for: float = 0.0,
    datastore: str | None = None,
) -> DesktopView:
    return DesktopView(
        id=f"d{next(_ids)}",
        state=state,
        user_id=user,
        revision_id=rev,
        idle_since=None if idle_for is None else NOW - timedelta(seconds=idle_for),
        state_since=NOW - timedelta(seconds=state_for),
        datastore=datastore,
    )


def sizing(**kw: object) -> PlanInput:
    base: dict[str, object] = {
        "warm": 3,
        "max": 10,
        "retention": timedelta(minutes=30),
        "concurrency": 10,
    }
    base.update(kw)
    return PlanInput(**base)  # type: ignore[arg-type]


# --- R1: idle, warm, max, concurrency ----------------------------------------------------


def test_empty_pool_creates_warm() -> None:
    plan = plan_pool(sizing(warm=3), [], now=NOW)
    assert plan.create == 3
    assert plan.counts.total == 0


def test_idle_counts_ready_and_unassigned_provisioning() -> None:
    desktops = [
        desk(S.READY),
        desk(S.CREATING),
        desk(S.BOOTING),
        desk(S.CREATING, user="u1"),  # being created for a user: not idle
        desk(S.BOOTING, user="u2"),
        desk(S.CONNECTED, user="u3"),
    ]
    plan = plan_pool(sizing(warm=4), desktops, now=NOW)
    assert plan.counts.idle == 3
    assert plan.counts.provisioning == 4
    assert plan.create == 1  # 4 warm - 3 idle: never overshoots


def test_warm_reached_creates_nothing() -> None:
    plan = plan_pool(sizing(warm=2), [desk(S.READY), desk(S.CREATING)], now=NOW)
    assert plan.create == 0


def test_never_exceeds_max() -> None:
    held = [desk(S.CONNECTED, user=f"u{i}") for i in range(8)]
    plan = plan_pool(sizing(warm=5, max=10), held, now=NOW)
    assert plan.create == 2
    full = [*held, desk(S.DISCONNECTED, user="u8", idle_for=1), desk(S.FAILED)]
    assert plan_pool(sizing(warm=5, max=10), full, now=NOW).create == 0


def test_failed_and_deleting_occupy_slots() -> None:
    desktops = [desk(S.FAILED), desk(S.DELETING), desk(S.LOST)]
    plan = plan_pool(sizing(warm=3, max=4), desktops, now=NOW)
    assert plan.counts.total == 3
    assert plan.create == 1


def test_deleted_desktops_are_ignored() -> None:
    plan = plan_pool(sizing(warm=2, max=2), [desk(S.DELETED), desk(S.DELETED)], now=NOW)
    assert plan.counts.total == 0
    assert plan.create == 2


def test_concurrency_limits_provisioning() -> None:
    plan = plan_pool(sizing(warm=10, concurrency=3), [desk(S.CREATING, user="u1")], now=NOW)
    assert plan.create == 2  # 3 slots, 1 busy


def test_provider_budget_limits_creates() -> None:
    assert plan_pool(sizing(warm=5, provider_budget=2), [], now=NOW).create == 2
    assert plan_pool(sizing(warm=5, provider_budget=0), [], now=NOW).create == 0


def test_paused_provisioning_creates_nothing_but_still_expires() -> None:
    old = desk(S.DISCONNECTED, user="u1", idle_for=3600)
    plan = plan_pool(sizing(provisioning_paused=True), [old], now=NOW)
    assert plan.create == 0
    assert plan.expire == (old.id,)


def _state_lists() -> st.SearchStrategy[list[DesktopView]]:
    one = st.builds(
        lambda state, has_user, idle_for: desk(
            state,
            user=f"u{next(_ids)}" if has_user or state in (S.CONNECTED,) else None,
            idle_for=idle_for,
            state_for=idle_for or 0,
        ),
        st.sampled_from(list(DesktopState)),
        st.booleans(),
        st.one_of(st.none(), st.floats(min_value=0, max_value=7200)),
    )
    return st.lists(one, max_size=15)


@given(
    desktops=_state_lists(),
    warm=st.integers(1, 10),
    extra=st.integers(0, 10),
    concurrency=st.integers(1, 5),
    budget=st.one_of(st.none(), st.integers(0, 5)),
    draining=st.booleans(),
    paused=st.booleans(),
)
def test_create_count_property(
    desktops: list[DesktopView],
    warm: int,
    extra: int,
    concurrency: int,
    budget: int | None,
    draining: bool,
    paused: bool,
) -> None:
    """create == max(0, min(warm - idle, max - total, concurrency - provisioning, budget))."""
    size = sizing(
        warm=warm,
        max=warm + extra,
        concurrency=concurrency,
        provider_budget=budget,
        draining=draining,
        provisioning_paused=paused,
    )
    plan = plan_pool(size, desktops, now=NOW)
    live = [d for d in desktops if d.state in LIVE_STATES]
    total = len(live)
    idle = sum(
        1
        for d in live
        if d.state is S.READY or (d.state in PROVISIONING_STATES and d.user_id is None)
    )
    provisioning = sum(1 for d in live if d.state in PROVISIONING_STATES)
    assert (plan.counts.total, plan.counts.idle, plan.counts.provisioning) == (
        total,
        idle,
        provisioning,
    )
    limits = [warm - idle, size.max - total, concurrency - provisioning]
    if budget is not None:
        limits.append(budget)
    expected = 0 if draining or paused else max(0, min(limits))
    assert plan.create == expected
    assert plan.create >= 0
    if total <= size.max:
        assert total + plan.create <= size.max
    if plan.create:
        assert idle + plan.create <= warm
        assert provisioning + plan.create <= concurrency


# --- L1/L2: retention ------------------------------------------------------------------


def test_disconnected_expires_exactly_at_deadline() -> None:
    retention = timedelta(minutes=30)
    due = desk(S.DISCONNECTED, user="u1", idle_for=1800)
    early = desk(S.DISCONNECTED, user="u2", idle_for=1799)
    plan = plan_pool(sizing(retention=retention), [due, early], now=NOW)
    assert plan.expire == (due.id,)
    assert retention_deadline(early, retention) == NOW + timedelta(seconds=1)


def test_connected_and_ready_never_expire() -> None:
    desktops = [
        desk(S.CONNECTED, user="u1", idle_for=10**6),
        desk(S.READY, idle_for=10**6),
        desk(S.CREATING, user="u2", idle_for=10**6),
    ]
    plan = plan_pool(sizing(retention=timedelta(0)), desktops, now=NOW)
    assert plan.expire == ()
    for d in desktops:
        assert retention_deadline(d, timedelta(0)) is None


def test_zero_retention_expires_at_once() -> None:
    d = desk(S.DISCONNECTED, user="u1", idle_for=0)
    assert plan_pool(sizing(retention=timedelta(0)), [d], now=NOW).expire == (d.id,)


def test_retained_without_idle_since_is_not_expired() -> None:
    d = desk(S.DISCONNECTED, user="u1", idle_for=None)
    assert plan_pool(sizing(retention=timedelta(0)), [d], now=NOW).expire == ()


def test_claim_grace_keeps_an_unconnected_assignment_longer() -> None:
    """A user served from the queue gets at least claim_grace to connect."""
    size = sizing(retention=timedelta(seconds=60), claim_grace=timedelta(seconds=120))
    assigned = desk(S.ASSIGNED, user="u1", idle_for=90)
    disconnected = desk(S.DISCONNECTED, user="u2", idle_for=90)
    plan = plan_pool(size, [assigned, disconnected], now=NOW)
    assert plan.expire == (disconnected.id,)
    assert retention_deadline(assigned, size.retention, claim_grace=size.claim_grace) == (
        NOW + timedelta(seconds=30)
    )
    later = plan_pool(size, [desk(S.ASSIGNED, user="u1", idle_for=120)], now=NOW)
    assert len(later.expire) == 1


def test_retention_longer_than_grace_wins_for_assigned() -> None:
    size = sizing(retention=timedelta(seconds=300), claim_grace=timedelta(seconds=120))
    assert plan_pool(size, [desk(S.ASSIGNED, user="u1", idle_for=200)], now=NOW).expire == ()
    assert len(plan_pool(size, [desk(S.ASSIGNED, user="u1", idle_for=300)], now=NOW).expire) == 1


# --- failed, draining ------------------------------------------------------------------


def test_failed_kept_for_inspection_then_removed() -> None:
    keep = timedelta(minutes=10)
    fresh = desk(S.FAILED, state_for=599)
    old = desk(S.FAILED, state_for=600)
    plan = plan_pool(sizing(failed_keep=keep), [fresh, old], now=NOW)
    assert plan.remove_failed == (old.id,)


def test_draining_destroys_unassigned_and_keeps_assigned() -> None:
    idle = [desk(S.READY), desk(S.CREATING), desk(S.BOOTING)]
    held = [
        desk(S.CONNECTED, user="u1"),
        desk(S.DISCONNECTED, user="u2", idle_for=1),
        desk(S.ASSIGNED, user="u3", idle_for=1),
        desk(S.BOOTING, user="u4"),
    ]
    failed = desk(S.FAILED, state_for=0)
    plan = plan_pool(sizing(draining=True), [*idle, *held, failed], now=NOW)
    assert set(plan.drain) == {d.id for d in idle}
    assert plan.remove_failed == (failed.id,)  # no inspection time when draining
    assert plan.expire == ()
    assert plan.create == 0


# --- T2 Recreate -----------------------------------------------------------------------


def test_recreate_targets_failed_and_stale_idle_only() -> None:
    stale_ready = desk(S.READY, rev="r1")
    stale_creating = desk(S.CREATING, rev="r1")
    current_ready = desk(S.READY, rev="r2")
    failed = desk(S.FAILED, rev="r2")
    stale_held = [
        desk(S.CONNECTED, user="u1", rev="r1"),
        desk(S.DISCONNECTED, user="u2", rev="r1", idle_for=5),
        desk(S.BOOTING, user="u3", rev="r1"),
        desk(S.ASSIGNED, user="u4", rev="r1", idle_for=5),
    ]
    desktops = [stale_ready, stale_creating, current_ready, failed, *stale_held]
    targets = recreate_targets(desktops, "r2")
    assert set(targets) == {stale_ready.id, stale_creating.id, failed.id}


def test_recreate_without_a_current_revision_only_removes_failed() -> None:
    failed = desk(S.FAILED)
    assert recreate_targets([desk(S.READY, rev="r1"), failed], None) == [failed.id]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(DesktopState)),
            st.booleans(),
            st.sampled_from(["r1", "r2", None]),
        ),
        max_size=20,
    ),
    st.sampled_from(["r1", "r2", None]),
)
def test_recreate_never_touches_assigned(
    specs: list[tuple[DesktopState, bool, str | None]], current: str | None
) -> None:
    desktops = [
        desk(s, user=f"u{i}" if has_user else None, rev=r)
        for i, (s, has_user, r) in enumerate(specs)
    ]
    targets = set(recreate_targets(desktops, current))
    by_id = {d.id: d for d in desktops}
    for desktop_id in targets:
        d = by_id[desktop_id]
        assert d.user_id is None
        assert d.state is S.FAILED or is_stale_revision(d, current)
    for d in desktops:
        should = d.user_id is None and (
            d.state is S.FAILED
            or (
                d.state in (PROVISIONING_STATES | {S.READY})
                and current is not None
                and d.revision_id != current
            )
        )
        assert (d.id in targets) == should


# --- T4 datastores, held_by ------------------------------------------------------------


def test_least_loaded_datastore() -> None:
    desktops = [
        desk(S.READY, datastore="a"),
        desk(S.CONNECTED, user="u", datastore="a"),
        desk(S.READY, datastore="b"),
        desk(S.DELETED, datastore="c"),  # gone: no load
        desk(S.READY, datastore="c"),
        desk(S.READY, datastore="old"),  # not a datastore of the pool
    ]
    assert least_loaded_datastore(["a", "b", "c"], desktops) == "b"  # b and c tie: first wins
    assert least_loaded_datastore(["c", "b", "a"], desktops) == "c"
    assert least_loaded_datastore(["a", "new"], desktops) == "new"
    assert least_loaded_datastore([], desktops) is None


@given(
    st.lists(st.sampled_from(["a", "b", "c", "z"]), max_size=30),
    st.permutations(["a", "b", "c"]),
)
def test_least_loaded_is_a_minimum(placed: list[str], order: list[str]) -> None:
    desktops = [desk(S.READY, datastore=name) for name in placed]
    chosen = least_loaded_datastore(order, desktops)
    load = {name: placed.count(name) for name in order}
    assert chosen in order
    assert load[chosen] == min(load.values())
    assert chosen == next(name for name in order if load[name] == min(load.values()))


def test_held_by_finds_the_users_live_desktop() -> None:
    mine = desk(S.BOOTING, user="alice")
    desktops = [desk(S.READY), desk(S.DELETING), mine, desk(S.CONNECTED, user="bob")]
    assert held_by(desktops, "alice") is mine
    assert held_by(desktops, "carol") is None


def test_counts_by_card() -> None:
    counts = count_desktops(
        [
            desk(S.READY),
            desk(S.CREATING),
            desk(S.CONNECTED, user="a"),
            desk(S.DISCONNECTED, user="b", idle_for=1),
            desk(S.ASSIGNED, user="c", idle_for=1),
            desk(S.FAILED),
            desk(S.DELETING),
            desk(S.DELETED),
        ],
        waiting=4,
    )
    assert counts.ready == 1
    assert counts.provisioning == 1
    assert counts.assigned_connected == 1
    assert counts.assigned_disconnected == 2
    assert counts.failed == 1
    assert counts.deleting == 1
    assert counts.total == 7
    assert counts.idle == 2
    assert counts.waiting == 4
