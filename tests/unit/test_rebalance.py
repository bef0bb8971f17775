"""T4: removing a datastore replaces its idle desktops first, a few per pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hotdesk.domain.pools import DesktopView, PlanInput, plan_pool
from hotdesk.domain.states import DesktopState

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def view(
    i: int, store: str, state: DesktopState = DesktopState.READY, user: str | None = None
) -> DesktopView:
    return DesktopView(
        id=f"d{i}", state=state, user_id=user, revision_id="r1", state_since=NOW, datastore=store
    )


def sizing(**kw: object) -> PlanInput:
    base: dict[str, object] = dict(
        warm=4, max=10, retention=timedelta(minutes=5), concurrency=2, datastores=("a", "b")
    )
    base.update(kw)
    return PlanInput(**base)  # type: ignore[arg-type]


def test_idle_desktops_on_a_removed_datastore_are_retired_within_the_free_slots() -> None:
    desktops = [view(1, "a"), view(2, "c"), view(3, "c"), view(4, "c")]
    plan = plan_pool(sizing(), desktops, now=NOW)
    assert plan.retire == ("d2", "d3")  # two free provisioning slots


def test_assigned_desktops_on_a_removed_datastore_are_left_alone() -> None:
    desktops = [
        view(1, "c", DesktopState.CONNECTED, "u1"),
        view(2, "c", DesktopState.DISCONNECTED, "u2"),
    ]
    assert plan_pool(sizing(), desktops, now=NOW).retire == ()


def test_no_retirement_without_free_slots_or_without_datastores() -> None:
    busy = [view(1, "c"), view(2, "a", DesktopState.CREATING), view(3, "a", DesktopState.BOOTING)]
    assert plan_pool(sizing(), busy, now=NOW).retire == ()
    assert plan_pool(sizing(datastores=()), [view(1, "c")], now=NOW).retire == ()
