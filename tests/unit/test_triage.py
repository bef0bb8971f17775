"""Triage: a pool is skipped only when a full plan would do nothing (property-tested)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from hotdesk.domain.pools import DesktopView, PlanInput, plan_pool
from hotdesk.domain.states import DesktopState
from hotdesk.domain.triage import (
    creates_from_counts,
    needs_desktop_rows,
    needs_pass,
    summarize,
)

S = DesktopState
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ASSIGNABLE = {S.ASSIGNED, S.CONNECTED, S.DISCONNECTED, S.CREATING, S.BOOTING}

moments = st.integers(min_value=0, max_value=7200).map(lambda s: NOW - timedelta(seconds=s))


@st.composite
def desktop_views(draw: st.DrawFn, index: int) -> DesktopView:
    state = draw(st.sampled_from(list(DesktopState)))
    assigned = state in ASSIGNABLE and draw(st.booleans())
    if state in (S.ASSIGNED, S.CONNECTED, S.DISCONNECTED):
        assigned = True
    return DesktopView(
        id=f"d{index}",
        state=state,
        user_id=f"u{index}" if assigned else None,
        revision_id="r1",
        idle_since=draw(moments) if state in (S.ASSIGNED, S.DISCONNECTED) else None,
        state_since=draw(moments),
        datastore=draw(st.sampled_from([None, "ds1", "ds2"])),
    )


@st.composite
def pools(draw: st.DrawFn) -> tuple[PlanInput, list[DesktopView]]:
    maximum = draw(st.integers(1, 12))
    sizing = PlanInput(
        warm=draw(st.integers(1, maximum)),
        max=maximum,
        retention=timedelta(seconds=draw(st.integers(0, 3600))),
        concurrency=draw(st.integers(1, 4)),
        draining=draw(st.booleans()),
        provisioning_paused=draw(st.booleans()),
        failed_keep=timedelta(seconds=draw(st.integers(0, 3600))),
        claim_grace=timedelta(seconds=draw(st.integers(0, 600))),
        provider_budget=draw(st.none() | st.integers(0, 5)),
        datastores=tuple(draw(st.sets(st.sampled_from(["ds1", "ds2"])))),
    )
    count = draw(st.integers(0, 14))
    return sizing, [draw(desktop_views(i)) for i in range(count)]


@settings(max_examples=500)
@given(pools(), st.integers(0, 3))
def test_counts_alone_plan_what_the_rows_would_when_nothing_is_destroyed(
    pool: tuple[PlanInput, list[DesktopView]], waiting: int
) -> None:
    sizing, desktops = pool
    summary = summarize(desktops, waiting=waiting)
    plan = plan_pool(sizing, desktops, now=NOW, waiting=waiting)
    assert creates_from_counts(sizing, summary) == plan.create
    if not needs_desktop_rows(sizing, summary, now=NOW):
        assert (plan.expire, plan.remove_failed, plan.drain, plan.retire) == ((), (), (), ())


@settings(max_examples=500)
@given(pools(), st.integers(0, 3))
def test_a_skipped_pool_is_one_a_full_plan_would_leave_alone(
    pool: tuple[PlanInput, list[DesktopView]], waiting: int
) -> None:
    sizing, desktops = pool
    if needs_pass(sizing, summarize(desktops, waiting=waiting), now=NOW):
        return
    plan = plan_pool(sizing, desktops, now=NOW, waiting=waiting)
    assert (plan.expire, plan.remove_failed, plan.drain, plan.retire, plan.create) == (
        (), (), (), (), 0,
    )  # fmt: skip
    platform_work = {S.CREATING, S.BOOTING, S.DELETING}
    assert not any(d.state in platform_work for d in desktops), "work to collect"
    assert waiting == 0, "a queue is always served by a full pass"


def test_a_steady_pool_is_skipped_and_a_claim_makes_it_due() -> None:
    sizing = PlanInput(warm=2, max=5, retention=timedelta(minutes=30), concurrency=2)
    ready = [DesktopView(f"d{i}", S.READY, None, "r1", state_since=NOW) for i in range(2)]
    connected = DesktopView("d9", S.CONNECTED, "u1", "r1", state_since=NOW)
    assert not needs_pass(sizing, summarize([*ready, connected]), now=NOW)
    claimed = DesktopView("d0", S.CONNECTED, "u2", "r1", state_since=NOW)
    assert needs_pass(sizing, summarize([claimed, ready[1], connected]), now=NOW)


def test_retention_makes_a_pool_due_exactly_at_the_deadline() -> None:
    sizing = PlanInput(warm=1, max=5, retention=timedelta(minutes=30), concurrency=2)
    left = NOW - timedelta(minutes=29)
    desktops = [
        DesktopView("d1", S.READY, None, "r1", state_since=NOW),
        DesktopView("d2", S.DISCONNECTED, "u1", "r1", idle_since=left, state_since=left),
    ]
    assert not needs_pass(sizing, summarize(desktops), now=NOW)
    assert needs_pass(sizing, summarize(desktops), now=NOW + timedelta(minutes=1))
