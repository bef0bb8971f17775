"""Which pools need a full reconcile pass: decided from per-state counts, not desktop rows.

A steady pool (warm idle desktops, nothing in flight, nothing due) needs no write transaction.
The reconciler reads one grouped summary of every pool it holds and plans in full only the
pools ``needs_pass`` selects. The rule is conservative: whenever ``plan_pool`` would act, or
there is platform work to collect, ``needs_pass`` is true (a property test checks this).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from hotdesk.domain.pools import (
    DesktopView,
    PlanInput,
    PoolCounts,
    count_state_groups,
    desktops_to_create,
)
from hotdesk.domain.states import PROVISIONING_STATES, DesktopState

S = DesktopState
PLATFORM_WORK = PROVISIONING_STATES | {S.DELETING}  # calls to start or results to collect


@dataclass(frozen=True)
class StateGroup:
    """Desktops of one pool in one state, assigned or not: how many, and the earliest times."""

    state: DesktopState
    unassigned: bool
    count: int
    earliest_idle_since: datetime | None = None
    earliest_state_since: datetime | None = None


@dataclass(frozen=True)
class PoolSummary:
    """What triage knows about a pool: its state groups, its queue, stranded idle desktops."""

    groups: tuple[StateGroup, ...] = ()
    waiting: int = 0
    idle_datastores: frozenset[str | None] = frozenset()  # datastores of ready idle desktops


def needs_pass(sizing: PlanInput, summary: PoolSummary, *, now: datetime) -> bool:
    """Whether the pool may need anything from a full pass now (never misses; may be true
    for a pass that then finds nothing to do)."""
    if summary.waiting or needs_desktop_rows(sizing, summary, now=now):
        return True
    if any(g.state in PLATFORM_WORK for g in summary.groups):
        return True
    return creates_from_counts(sizing, summary) > 0


def needs_desktop_rows(sizing: PlanInput, summary: PoolSummary, *, now: datetime) -> bool:
    """Whether a plan may destroy particular desktops (expired, failed, drained, stranded):
    only then must it look at every desktop row; otherwise counts decide the plan."""
    if sizing.draining:
        return True
    if sizing.datastores and any(
        ds is not None and ds not in sizing.datastores for ds in summary.idle_datastores
    ):
        return True
    return any(_group_is_due(sizing, group, now) for group in summary.groups)


def creates_from_counts(sizing: PlanInput, summary: PoolSummary) -> int:
    """How many desktops a plan creates, from the counts alone (what ``plan_pool`` decides
    when no desktop is to be destroyed)."""
    if sizing.draining or sizing.provisioning_paused:
        return 0
    return desktops_to_create(sizing, counts_of(summary))


def counts_of(summary: PoolSummary) -> PoolCounts:
    """The pool status counts of a summary."""
    groups = ((g.state, g.unassigned, g.count) for g in summary.groups)
    return count_state_groups(groups, waiting=summary.waiting)


def summarize(desktops: Sequence[DesktopView], *, waiting: int = 0) -> PoolSummary:
    """The summary of a pool's desktops (what the database's grouped query returns)."""
    groups: dict[tuple[DesktopState, bool], list[DesktopView]] = {}
    for d in desktops:
        if d.state is not S.DELETED:
            groups.setdefault((d.state, d.user_id is None), []).append(d)
    return PoolSummary(
        groups=tuple(
            StateGroup(
                state=state,
                unassigned=unassigned,
                count=len(views),
                earliest_idle_since=_earliest(v.idle_since for v in views),
                earliest_state_since=_earliest(v.state_since for v in views),
            )
            for (state, unassigned), views in groups.items()
        ),
        waiting=waiting,
        idle_datastores=frozenset(
            d.datastore for d in desktops if d.state is S.READY and d.user_id is None
        ),
    )


def _group_is_due(sizing: PlanInput, group: StateGroup, now: datetime) -> bool:
    if group.state is S.FAILED:
        since = group.earliest_state_since
        return since is None or since + sizing.failed_keep <= now
    idle_since = group.earliest_idle_since
    if group.state is S.ASSIGNED and idle_since is not None:
        return idle_since + max(sizing.retention, sizing.claim_grace) <= now
    if group.state is S.DISCONNECTED and idle_since is not None:
        return idle_since + sizing.retention <= now
    return False


def _earliest(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None
