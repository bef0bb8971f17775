"""Which pools the reconciler must plan in full this pass (one read for all of them).

A full plan is a write transaction per pool; most pools are steady most of the time. This
reads one grouped summary of every pool a process holds and lets ``domain.triage.needs_pass``
pick the pools that may need something.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hotdesk.db.models import DesktopRow, PoolRow, QueueEntryRow
from hotdesk.domain.pools import PlanInput
from hotdesk.domain.states import DesktopState
from hotdesk.domain.triage import PoolSummary, StateGroup, needs_pass
from hotdesk.services.context import BrokerContext


def plan_input(
    ctx: BrokerContext, pool: PoolRow, now: datetime, *, provider_budget: int | None = None
) -> PlanInput:
    """The sizing and policy planning reads from a pool row and the settings."""
    return PlanInput(
        warm=pool.warm_desktops,
        max=pool.max_desktops,
        retention=timedelta(seconds=pool.retention_seconds),
        concurrency=int(pool.spec.get("provision_concurrency", 2)),
        draining=pool.draining,
        provisioning_paused=bool(
            pool.provision_backoff_until and pool.provision_backoff_until > now
        ),
        failed_keep=timedelta(seconds=ctx.settings.failed_keep_seconds),
        claim_grace=timedelta(seconds=ctx.settings.claim_grace_seconds),
        provider_budget=provider_budget,
        datastores=tuple(pool.spec.get("datastores") or ()),
    )


def pools_needing_a_pass(ctx: BrokerContext, pool_ids: Sequence[str]) -> list[str]:
    """Of ``pool_ids``, those a full pass may have something to do for, in the given order."""
    if not pool_ids:
        return []
    with ctx.db.read() as session:
        now = ctx.now()
        pools = {
            p.id: p
            for p in session.scalars(select(PoolRow).where(PoolRow.id.in_(pool_ids)))
            if p.deleted_at is None
        }
        summaries = pool_summaries(session, list(pools), pools)
    return [
        pool_id
        for pool_id in pool_ids
        if pool_id in pools
        and needs_pass(plan_input(ctx, pools[pool_id], now), summaries[pool_id], now=now)
    ]


def pool_summaries(
    session: Session, pool_ids: list[str], pools: dict[str, PoolRow]
) -> dict[str, PoolSummary]:
    """Per pool: desktops grouped by state and assignment, waiting users, and (for pools that
    restrict their datastores) the datastores of ready idle desktops."""
    unassigned = DesktopRow.user_id.is_(None)
    grouped = session.execute(
        select(
            DesktopRow.pool_id,
            DesktopRow.state,
            unassigned,
            func.count(),
            func.min(DesktopRow.idle_since),
            func.min(DesktopRow.state_since),
        )
        .where(DesktopRow.pool_id.in_(pool_ids), DesktopRow.state != DesktopState.DELETED.value)
        .group_by(DesktopRow.pool_id, DesktopRow.state, unassigned)
    ).all()
    groups: dict[str, list[StateGroup]] = {pool_id: [] for pool_id in pool_ids}
    for pool_id, state, is_unassigned, n, idle_since, state_since in grouped:
        groups[pool_id].append(
            StateGroup(DesktopState(state), bool(is_unassigned), int(n), idle_since, state_since)
        )
    waiting = dict(
        session.execute(
            select(QueueEntryRow.pool_id, func.count())
            .where(QueueEntryRow.pool_id.in_(pool_ids), QueueEntryRow.state == "waiting")
            .group_by(QueueEntryRow.pool_id)
        ).all()
    )
    datastores = _idle_datastores(
        session, [pid for pid in pool_ids if pools[pid].spec.get("datastores")]
    )
    return {
        pool_id: PoolSummary(
            groups=tuple(groups[pool_id]),
            waiting=int(waiting.get(pool_id, 0)),
            idle_datastores=frozenset(datastores.get(pool_id, ())),
        )
        for pool_id in pool_ids
    }


def _idle_datastores(session: Session, pool_ids: list[str]) -> dict[str, set[str | None]]:
    """Datastores holding ready idle desktops, for pools that restrict their datastores."""
    found: dict[str, set[str | None]] = {}
    if not pool_ids:
        return found
    rows = session.execute(
        select(DesktopRow.pool_id, DesktopRow.datastore)
        .where(
            DesktopRow.pool_id.in_(pool_ids),
            DesktopRow.state == DesktopState.READY.value,
            DesktopRow.user_id.is_(None),
        )
        .distinct()
    ).all()
    for pool_id, datastore in rows:
        found.setdefault(pool_id, set()).add(datastore)
    return found
