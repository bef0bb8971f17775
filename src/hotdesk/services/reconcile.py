"""The reconciler's database side: load work (short transaction) and apply results (rule 3).

Every apply is guarded by the state the work was loaded in: if the desktop moved on meanwhile
(another process, a claim, an admin), the result is dropped and the next pass re-observes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hotdesk.db.models import DesktopRow, PoolRow, ProviderRow, TemplateRevisionRow
from hotdesk.domain.durations import format_duration
from hotdesk.domain.errors import PermanentError, ProviderError, TemporaryError
from hotdesk.domain.pools import PoolPlan, plan_pool, retention_deadline
from hotdesk.domain.states import PROVISIONING_STATES, DesktopState
from hotdesk.domain.triage import (
    PLATFORM_WORK,
    counts_of,
    creates_from_counts,
    needs_desktop_rows,
)
from hotdesk.observability.metrics import PROVISIONING_FAILURES
from hotdesk.providers.base import (
    ConsoleEndpoint,
    CreateRequest,
    Instance,
    InstanceRef,
)
from hotdesk.services.agent import context_secret
from hotdesk.services.context import BrokerContext
from hotdesk.services.create_requests import create_request
from hotdesk.services.events import lock_desktop, move_desktop, record_event
from hotdesk.services.intents import add_desktop_intent, choose_datastore
from hotdesk.services.leases import forget_pool_lease, lease_still_held, pool_lease
from hotdesk.services.lookup import desktop_view, live_desktops, lock_pool
from hotdesk.services.queue import expire_stale_entries, serve_queue
from hotdesk.services.sessions import release_desktop
from hotdesk.services.triage import plan_input, pool_summaries

S = DesktopState
ACTOR = "system:reconciler"
PROVISIONING = [s.value for s in PROVISIONING_STATES]


@dataclass(frozen=True)
class CreateJob:
    """Call ``create_desktop`` for a desktop in state ``creating``."""

    desktop_id: str
    pool_id: str
    provider_id: str
    request: CreateRequest
    for_user: bool = False
    tenant_id: str = ""
    revision_id: str = ""
    lease: str | None = None  # the pool lease token it was planned under


@dataclass(frozen=True)
class BootJob:
    """Watch a booting desktop until it is ready."""

    desktop_id: str
    pool_id: str
    provider_id: str
    ref: InstanceRef
    has_agent: bool
    lease: str | None = None


@dataclass(frozen=True)
class DeleteJob:
    """Destroy a desktop's VM."""

    desktop_id: str
    pool_id: str
    provider_id: str
    ref: InstanceRef
    lease: str | None = None


@dataclass
class PoolWork:
    """Platform calls a pass should make for one pool."""

    pool_id: str
    provider_id: str = ""
    concurrency: int = 2
    provider_limit: int = 10
    provider_booting: int = 0
    creates: list[CreateJob] = field(default_factory=list)
    boots: list[BootJob] = field(default_factory=list)
    deletes: list[DeleteJob] = field(default_factory=list)
    plan: PoolPlan | None = None


def plan_pool_pass(ctx: BrokerContext, pool_id: str, *, lease: str | None = None) -> PoolWork:
    """Decide and record what the pool needs now; return the platform calls to make.

    With ``lease`` (the pool lease token), nothing happens unless this process still holds it.
    """
    context_secret(ctx)  # load it before the write transaction (never nest transactions)
    with ctx.db.write() as session:
        now = ctx.now()
        if not lease_still_held(session, pool_lease(pool_id), lease):
            return PoolWork(pool_id=pool_id)
        pool = lock_pool(session, pool_id)
        if pool.deleted_at is not None:
            return PoolWork(pool_id=pool_id)
        expire_stale_entries(session, ctx, pool.id, now)
        serve_queue(session, ctx, pool, now)
        plan, desktops = _plan(session, ctx, pool, now)  # applying the plan updates these rows
        desktops += _apply_plan(session, ctx, pool, plan, now)
        _finish_drain_if_empty(session, pool, now)
        work = _collect_work(session, ctx, pool, now, lease, desktops)
        work.plan = plan
    return work


def _plan(
    session: Session, ctx: BrokerContext, pool: PoolRow, now: datetime
) -> tuple[PoolPlan, list[DesktopRow]]:
    """The plan, and the desktop rows work is collected from.

    When no desktop can be due for destruction the counts decide (one grouped query) and only
    the desktops with platform work are loaded; otherwise every live desktop is.
    """
    budget = _provider_budget(session, pool.provider_id)
    sizing = plan_input(ctx, pool, now, provider_budget=budget)
    summary = pool_summaries(session, [pool.id], {pool.id: pool})[pool.id]
    if not needs_desktop_rows(sizing, summary, now=now):
        plan = PoolPlan(create=creates_from_counts(sizing, summary), counts=counts_of(summary))
        return plan, _desktops_with_platform_work(session, pool.id)
    rows = live_desktops(session, pool.id)
    return plan_pool(sizing, [desktop_view(d) for d in rows], now=now), rows


def _desktops_with_platform_work(session: Session, pool_id: str) -> list[DesktopRow]:
    states = [s.value for s in PLATFORM_WORK]
    query = select(DesktopRow).where(DesktopRow.pool_id == pool_id, DesktopRow.state.in_(states))
    return list(session.scalars(query))


def _count_provider_state(session: Session, provider_id: str, state: DesktopState) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(DesktopRow)
            .where(DesktopRow.provider_id == provider_id, DesktopRow.state == state.value)
        )
        or 0
    )


def _provider_budget(session: Session, provider_id: str) -> int:
    provider = session.get(ProviderRow, provider_id)
    limit = provider.max_concurrent_provisioning if provider else 10
    inflight = session.scalar(
        select(func.count())
        .select_from(DesktopRow)
        .where(DesktopRow.provider_id == provider_id, DesktopRow.state.in_(PROVISIONING))
    )
    return max(0, limit - int(inflight or 0))


def _apply_plan(
    session: Session, ctx: BrokerContext, pool: PoolRow, plan: PoolPlan, now: datetime
) -> list[DesktopRow]:
    """Release what the plan destroys; add the intents it creates (returned)."""
    keep = timedelta(seconds=pool.retention_seconds)
    grace = timedelta(seconds=ctx.settings.claim_grace_seconds)
    idle = {S.READY.value, *PROVISIONING}

    def expired(d: DesktopRow) -> bool:
        deadline = retention_deadline(desktop_view(d), keep, claim_grace=grace)
        return deadline is not None and deadline <= now

    reasons: list[tuple[tuple[str, ...], str, Callable[[DesktopRow], bool]]] = [
        (plan.expire, f"retention {format_duration(keep)} expired without reconnect", expired),
        (plan.remove_failed, "failed desktop removed", lambda d: d.state == S.FAILED.value),
        (plan.drain, "pool is being deleted", lambda d: d.user_id is None and d.state in idle),
        (
            plan.retire,
            "its datastore was removed from the pool: replaced on the remaining ones",
            lambda d: d.user_id is None and d.state == S.READY.value,
        ),
    ]
    for ids, reason, still_due in reasons:
        for desktop_id in ids:
            # re-checked on the locked row: a reconnect or a claim may have committed meanwhile
            desktop = lock_desktop(session, desktop_id)
            if desktop is not None and desktop.state != S.DELETING.value and still_due(desktop):
                release_desktop(session, desktop, actor=ACTOR, now=now, reason=reason)
    return [
        add_desktop_intent(
            session,
            pool,
            user_id=None,
            now=now,
            actor=ACTOR,
            reason=f"replenish: keep {pool.warm_desktops} idle",
            datastore=choose_datastore(session, pool),
        )
        for _ in range(plan.create)
    ]


def _finish_drain_if_empty(session: Session, pool: PoolRow, now: datetime) -> None:
    if not pool.draining or live_desktops(session, pool.id):
        return
    pool.deleted_at = now
    forget_pool_lease(session, pool.id)
    record_event(
        session,
        tenant_id=pool.tenant_id,
        actor=ACTOR,
        kind="pool-deleted",
        now=now,
        reason="drained: every desktop destroyed",
        pool_id=pool.id,
    )


def _collect_work(
    session: Session,
    ctx: BrokerContext,
    pool: PoolRow,
    now: datetime,
    lease: str | None,
    desktops: list[DesktopRow],
) -> PoolWork:
    provider = session.get(ProviderRow, pool.provider_id)
    work = PoolWork(
        pool_id=pool.id,
        provider_id=pool.provider_id,
        concurrency=int(pool.spec.get("provision_concurrency", 2)),
        provider_limit=provider.max_concurrent_provisioning if provider else 10,
        provider_booting=_count_provider_state(session, pool.provider_id, S.BOOTING),
    )
    revisions: dict[str, TemplateRevisionRow | None] = {}
    for d in desktops:
        ref = InstanceRef(name=d.name, platform_id=d.platform_id, host=d.host)
        if d.state == S.CREATING.value and (d.next_attempt_at is None or d.next_attempt_at <= now):
            if d.template_revision_id not in revisions:
                revisions[d.template_revision_id] = session.get(
                    TemplateRevisionRow, d.template_revision_id
                )
            request = create_request(ctx, pool, d, revisions[d.template_revision_id])
            job = CreateJob(
                d.id,
                pool.id,
                pool.provider_id,
                request,
                d.user_id is not None,
                pool.tenant_id,
                d.template_revision_id,
                lease,
            )
            work.creates.append(job)
        elif d.state == S.BOOTING.value:
            rev = revisions.get(d.template_revision_id) or session.get(
                TemplateRevisionRow, d.template_revision_id
            )
            has_agent = bool(rev and rev.spec.get("has_agent"))
            work.boots.append(BootJob(d.id, pool.id, pool.provider_id, ref, has_agent, lease))
        elif d.state == S.DELETING.value:
            work.deletes.append(DeleteJob(d.id, pool.id, pool.provider_id, ref, lease))
    return work


# --- applying results ------------------------------------------------------------------


def record_created(ctx: BrokerContext, job: CreateJob, instance: Instance) -> None:
    """The platform accepted the VM: remember its id, start watching the boot."""
    with ctx.db.write() as session:
        now = ctx.now()
        if not _still_mine(session, job):
            return  # the new holder re-creates by the same name and gets this very VM
        desktop = lock_desktop(session, job.desktop_id)
        if desktop is None:
            return
        desktop.platform_id = instance.ref.platform_id
        desktop.host = instance.ref.host
        desktop.datastore = instance.datastore or desktop.datastore
        if desktop.state != S.CREATING.value:
            return  # moved on (e.g. Recreate sent it to deleting): keep the id for the delete
        desktop.last_error = None
        move_desktop(
            session,
            desktop,
            S.BOOTING,
            actor=ACTOR,
            reason="platform accepted",
            now=now,
            data={"platform_id": instance.ref.platform_id},
        )


def record_create_failure(ctx: BrokerContext, job: CreateJob, error: ProviderError) -> None:
    """Retry later with backoff, or mark the desktop failed (R3)."""
    with ctx.db.write() as session:
        now = ctx.now()
        if not _still_mine(session, job):
            return
        pool = lock_pool(session, job.pool_id)
        desktop = lock_desktop(session, job.desktop_id)
        if desktop is None or desktop.state != S.CREATING.value:
            return
        _count_pool_failure(ctx, pool, str(error), now)
        desktop.attempts += 1
        desktop.last_error = str(error)
        permanent = isinstance(error, PermanentError)
        if permanent or desktop.attempts >= ctx.settings.max_create_attempts:
            move_desktop(
                session,
                desktop,
                S.FAILED,
                actor=ACTOR,
                now=now,
                reason=f"create failed after {desktop.attempts} attempt(s): {error}",
            )
        else:
            delay = backoff(ctx, desktop.attempts, error)
            desktop.next_attempt_at = now + timedelta(seconds=delay)
            record_event(
                session,
                tenant_id=desktop.tenant_id,
                actor=ACTOR,
                kind="retry",
                now=now,
                reason=f"create failed ({error}); retry in {delay:.0f}s",
                pool_id=desktop.pool_id,
                desktop_id=desktop.id,
            )
    ctx.wakeups.notify(job.pool_id)


def backoff(ctx: BrokerContext, attempts: int, error: ProviderError | None = None) -> float:
    """Exponential backoff in seconds, at least what the platform asked for."""
    base = ctx.settings.backoff_base_seconds * float(2 ** max(0, attempts - 1))
    asked = float(error.delay) if isinstance(error, TemporaryError) else 0.0
    return min(ctx.settings.backoff_max_seconds, max(base, asked))


def _count_pool_failure(ctx: BrokerContext, pool: PoolRow, message: str, now: datetime) -> None:
    PROVISIONING_FAILURES.labels(pool=pool.name).inc()
    pool.provision_failures += 1
    pool.provision_error = message
    pool.provision_backoff_until = now + timedelta(seconds=backoff(ctx, pool.provision_failures))


def _clear_pool_failures(pool: PoolRow | None) -> None:
    if pool is not None and pool.provision_failures:
        pool.provision_failures = 0
        pool.provision_error = None
        pool.provision_backoff_until = None


def record_boot_status(
    ctx: BrokerContext,
    job: BootJob,
    instance: Instance | None,
    console: ConsoleEndpoint | None = None,
) -> None:
    """Move a booting desktop to ready (or to its user), or fail it when it vanished or hung."""
    with ctx.db.write() as session:
        now = ctx.now()
        if not _still_mine(session, job):
            return
        pool = lock_pool(session, job.pool_id)  # lock order everywhere: lease, pool, desktop
        desktop = lock_desktop(session, job.desktop_id)
        if desktop is None or desktop.state != S.BOOTING.value:
            return
        if instance is None:
            move_desktop(
                session,
                desktop,
                S.FAILED,
                actor=ACTOR,
                now=now,
                reason="the VM disappeared while booting",
            )
        elif instance.ready and (desktop.agent_ready or not job.has_agent):
            _became_ready(session, ctx, desktop, pool, console, now)
        elif desktop.state_since + timedelta(seconds=ctx.settings.boot_timeout_seconds) <= now:
            if pool is not None:
                _count_pool_failure(ctx, pool, "boot timed out", now)
            move_desktop(
                session,
                desktop,
                S.FAILED,
                actor=ACTOR,
                now=now,
                reason=f"not ready after {ctx.settings.boot_timeout_seconds:.0f}s",
            )
    ctx.wakeups.notify(job.pool_id)


def _became_ready(
    session: Session,
    ctx: BrokerContext,
    desktop: DesktopRow,
    pool: PoolRow | None,
    console: ConsoleEndpoint | None,
    now: datetime,
) -> None:
    desktop.power_state = "running"
    if console is not None:
        desktop.console = {k: v for k, v in console.__dict__.items() if v is not None}
    target = S.ASSIGNED if desktop.user_id else S.READY
    move_desktop(session, desktop, target, actor=ACTOR, reason="desktop is ready", now=now)
    _clear_pool_failures(pool)
    if pool is not None and target is S.READY:
        serve_queue(session, ctx, pool, now)


def record_deleted(ctx: BrokerContext, job: DeleteJob) -> None:
    """The VM is gone: the slot frees up; waiting users and replenishment may use it."""
    with ctx.db.write() as session:
        now = ctx.now()
        if not _still_mine(session, job):
            return  # deleting a missing VM is success: the new holder's delete will say so
        pool = lock_pool(session, job.pool_id)
        desktop = lock_desktop(session, job.desktop_id)
        if desktop is None or desktop.state != S.DELETING.value:
            return
        move_desktop(session, desktop, S.DELETED, actor=ACTOR, reason="VM destroyed", now=now)
        if pool.deleted_at is None:
            serve_queue(session, ctx, pool, now)
    ctx.wakeups.notify(job.pool_id)


def record_delete_failure(ctx: BrokerContext, job: DeleteJob, error: ProviderError) -> None:
    """Keep the desktop in ``deleting``; the next pass tries again."""
    with ctx.db.write() as session:
        if not _still_mine(session, job):
            return
        desktop = lock_desktop(session, job.desktop_id)
        if desktop is None or desktop.state != S.DELETING.value:
            return
        desktop.last_error = f"delete failed: {error}"
        record_event(
            session,
            tenant_id=desktop.tenant_id,
            actor=ACTOR,
            kind="retry",
            now=ctx.now(),
            reason=f"delete failed ({error}); will retry",
            pool_id=desktop.pool_id,
            desktop_id=desktop.id,
        )


def _still_mine(session: Session, job: CreateJob | BootJob | DeleteJob) -> bool:
    """Whether the pool lease the job was planned under is still this process's."""
    return lease_still_held(session, pool_lease(job.pool_id), job.lease)
