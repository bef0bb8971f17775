"""Pools: define (P1-P3), inspect, entitle (C1), Recreate (T2), delete by draining (P4)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hotdesk.db.models import (
    PoolRow,
    ProviderRow,
    QueueEntryRow,
    TemplateRow,
)
from hotdesk.domain.durations import format_duration
from hotdesk.domain.errors import Conflict, NotFound, ValidationFailed
from hotdesk.domain.pools import (
    PermissionRule,
    PoolCounts,
    PoolSpec,
    ProviderFacts,
    count_desktops,
    recreate_targets,
    validate_pool_spec,
)
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.directory import require_admin
from hotdesk.services.events import lock_desktop, record_event
from hotdesk.services.images import ImageState, images_of_pool
from hotdesk.services.lookup import current_revision_id, desktop_view, get_pool, live_desktops
from hotdesk.services.sessions import release_desktop


def spec_to_json(spec: PoolSpec) -> dict[str, Any]:
    """A pool spec as stored in the database."""
    data = asdict(spec)
    data["retention"] = format_duration(spec.retention)
    data["datastores"] = list(spec.datastores)
    data["permissions"] = [
        {
            k: v
            for k, v in (("user", r.user), ("role", r.role), ("may", list(r.may)))
            if v is not None
        }
        for r in spec.permissions
    ]
    return data


def spec_from_json(data: dict[str, Any]) -> PoolSpec:
    """A stored pool spec back as a domain value."""
    from hotdesk.domain.durations import parse_duration

    fields = dict(data)
    fields["retention"] = parse_duration(fields["retention"])
    fields["datastores"] = tuple(fields.get("datastores") or ())
    fields["permissions"] = tuple(
        PermissionRule(may=tuple(r.get("may", ())), user=r.get("user"), role=r.get("role"))
        for r in fields.get("permissions") or ()
    )
    return PoolSpec(**fields)


def _provider_facts(session: Session, tenant_id: str) -> dict[str, ProviderFacts]:
    facts = {}
    for row in session.scalars(select(ProviderRow).where(ProviderRow.tenant_id == tenant_id)):
        cfg = row.config or {}
        facts[row.name] = ProviderFacts(
            networks=frozenset(cfg.get("networks") or ()),
            targets=frozenset(cfg.get("targets") or ()),
            datastores=frozenset(cfg.get("datastores") or ()),
        )
    return facts


def save_pool(
    ctx: BrokerContext, actor: Actor, spec: PoolSpec, *, create: bool | None = None
) -> tuple[PoolRow, bool]:
    """Create or update a pool (P2: an invalid edit changes nothing). Returns (pool, changed)."""
    require_admin(actor)
    with ctx.db.write() as session:
        now = ctx.now()
        templates = session.scalars(
            select(TemplateRow.name).where(TemplateRow.tenant_id == actor.tenant_id)
        ).all()
        validate_pool_spec(
            spec, templates=templates, providers=_provider_facts(session, actor.tenant_id)
        )
        provider = session.scalar(
            select(ProviderRow).where(
                ProviderRow.tenant_id == actor.tenant_id, ProviderRow.name == spec.provider
            )
        )
        template = session.scalar(
            select(TemplateRow).where(
                TemplateRow.tenant_id == actor.tenant_id, TemplateRow.name == spec.template
            )
        )
        assert provider is not None and template is not None
        pool = session.scalar(
            select(PoolRow).where(
                PoolRow.tenant_id == actor.tenant_id,
                PoolRow.name == spec.name,
                PoolRow.deleted_at.is_(None),
            )
        )
        if pool is not None and create is True:
            raise Conflict(f"pool {spec.name!r} already exists")
        if pool is None and create is False:
            raise NotFound("pool", spec.name)
        if pool is not None and pool.draining:
            raise Conflict(f"pool {spec.name!r} is being deleted")
        _check_name_pattern_unique(session, provider.id, spec, pool)
        stored = spec_to_json(spec)
        if pool is not None and pool.spec == stored:
            return pool, False
        pool = _write_pool(session, actor, pool, stored, spec, provider.id, template.id, now)
        pool_id = pool.id
    ctx.wakeups.notify(pool_id)
    return pool, True


def _check_name_pattern_unique(
    session: Session, provider_id: str, spec: PoolSpec, pool: PoolRow | None
) -> None:
    for other in session.scalars(
        select(PoolRow).where(PoolRow.provider_id == provider_id, PoolRow.deleted_at.is_(None))
    ):
        if (pool is None or other.id != pool.id) and other.spec.get(
            "name_pattern"
        ) == spec.name_pattern:
            raise ValidationFailed(
                "name_pattern",
                f"pool {other.name!r} on the same provider already uses this name pattern",
            )


def _write_pool(
    session: Session,
    actor: Actor,
    pool: PoolRow | None,
    stored: dict[str, Any],
    spec: PoolSpec,
    provider_id: str,
    template_id: str,
    now: datetime,
) -> PoolRow:
    creating = pool is None
    if pool is None:
        pool = PoolRow(
            tenant_id=actor.tenant_id,
            name=spec.name,
            next_sequence=spec.sequence_start,
            generation=0,
            provision_failures=0,
            draining=False,
            created_at=now,
        )
        session.add(pool)
    elif pool.provider_id != provider_id and live_desktops(session, pool.id):
        raise ValidationFailed("provider", "the provider of a pool with desktops cannot change")
    pool.spec = stored
    pool.provider_id = provider_id
    pool.template_id = template_id
    pool.max_desktops = spec.max_desktops
    pool.warm_desktops = spec.warm_desktops
    pool.retention_seconds = spec.retention.total_seconds()
    pool.generation += 1
    pool.updated_at = now
    pool.provision_backoff_until = None
    session.flush()
    record_event(
        session,
        tenant_id=actor.tenant_id,
        actor=actor,
        kind="pool-created" if creating else "pool-saved",
        now=now,
        pool_id=pool.id,
        reason=f"pool {spec.name!r} {'created' if creating else 'saved'} "
        f"(generation {pool.generation})",
        data=stored,
    )
    return pool


def list_pools(ctx: BrokerContext, actor: Actor) -> list[PoolRow]:
    """Live pools of the tenant."""
    require_admin(actor)
    with ctx.db.read() as session:
        return list(
            session.scalars(
                select(PoolRow)
                .where(PoolRow.tenant_id == actor.tenant_id, PoolRow.deleted_at.is_(None))
                .order_by(PoolRow.name)
            )
        )


def get_pool_row(ctx: BrokerContext, actor: Actor, name: str) -> PoolRow:
    """One live pool of the tenant."""
    require_admin(actor)
    with ctx.db.read() as session:
        return get_pool(session, actor.tenant_id, name)


@dataclass(frozen=True)
class PoolStatus:
    """Pool status as the admin sees it."""

    name: str
    counts: PoolCounts
    warm: int
    max: int
    retention: str
    draining: bool
    provisioning_failing: bool
    provisioning_error: str | None
    provision_failures: int
    current_revision: int | None
    generation: int
    images: tuple[ImageState, ...] = ()


def pool_status(ctx: BrokerContext, actor: Actor, name: str) -> PoolStatus:
    """Counts by state, queue length, provisioning health and the current revision."""
    require_admin(actor)
    with ctx.db.read() as session:
        pool = get_pool(session, actor.tenant_id, name)
        return status_of(ctx, session, pool)


def status_of(ctx: BrokerContext, session: Session, pool: PoolRow) -> PoolStatus:
    """The status of a loaded pool."""
    fresh = ctx.now() - timedelta(seconds=ctx.settings.queue_ttl_seconds)
    waiting = (
        session.scalar(
            select(func.count())
            .select_from(QueueEntryRow)
            .where(
                QueueEntryRow.pool_id == pool.id,
                QueueEntryRow.state == "waiting",
                QueueEntryRow.last_seen_at >= fresh,
            )
        )
        or 0
    )
    counts = count_desktops(
        [desktop_view(d) for d in live_desktops(session, pool.id)], waiting=int(waiting)
    )
    template = session.get(TemplateRow, pool.template_id)
    from hotdesk.db.models import TemplateRevisionRow

    rev = (
        session.get(TemplateRevisionRow, template.current_revision_id)
        if template and template.current_revision_id
        else None
    )
    return PoolStatus(
        name=pool.name,
        counts=counts,
        warm=pool.warm_desktops,
        max=pool.max_desktops,
        retention=format_duration(timedelta(seconds=pool.retention_seconds)),
        draining=pool.draining,
        provisioning_failing=pool.provision_failures >= ctx.settings.failing_after,
        provisioning_error=pool.provision_error,
        provision_failures=pool.provision_failures,
        current_revision=rev.number if rev else None,
        generation=pool.generation,
        images=tuple(images_of_pool(session, pool)),
    )


def recreate_pool(ctx: BrokerContext, actor: Actor, name: str) -> list[str]:
    """T2 Recreate: destroy failed desktops and idle ones not on the current revision."""
    require_admin(actor)
    with ctx.db.write() as session:
        now = ctx.now()
        pool = get_pool(session, actor.tenant_id, name)
        current = current_revision_id(session, pool)
        rows = live_desktops(session, pool.id)
        targets = []
        for desktop_id in recreate_targets([desktop_view(d) for d in rows], current):
            # re-checked on the locked row: a user may have claimed it meanwhile (T2)
            desktop = lock_desktop(session, desktop_id)
            if desktop is None or not recreate_targets([desktop_view(desktop)], current):
                continue
            release_desktop(
                session,
                desktop,
                actor=actor,
                now=now,
                reason="Recreate: failed or not on the current template revision",
            )
            targets.append(desktop_id)
        record_event(
            session,
            tenant_id=pool.tenant_id,
            actor=actor,
            kind="recreate",
            now=now,
            pool_id=pool.id,
            reason=f"Recreate: {len(targets)} desktop(s) replaced",
        )
        pool.provision_failures = 0
        pool.provision_backoff_until = None
        pool_id = pool.id
    ctx.wakeups.notify(pool_id)
    return targets


def delete_pool(ctx: BrokerContext, actor: Actor, name: str) -> None:
    """P4: drain the pool: no new claims, assigned desktops finish, then every VM goes."""
    require_admin(actor)
    with ctx.db.write() as session:
        pool = get_pool(session, actor.tenant_id, name)
        if pool.draining:
            return
        pool.draining = True
        for entry in session.scalars(
            select(QueueEntryRow).where(
                QueueEntryRow.pool_id == pool.id, QueueEntryRow.state == "waiting"
            )
        ):
            entry.state, entry.ended_at = "cancelled", ctx.now()
        record_event(
            session,
            tenant_id=pool.tenant_id,
            actor=actor,
            kind="pool-draining",
            now=ctx.now(),
            pool_id=pool.id,
            reason="pool deletion requested: draining",
        )
        pool_id = pool.id
    ctx.wakeups.notify(pool_id)


# Entitlements and inventory live in their own modules; these names stay reachable from here.
from hotdesk.services.entitlements import (  # noqa: E402
    EntitlementLine,
    entitled_pools,
    get_entitlements,
    load_directory,
    set_entitlements,
)
from hotdesk.services.inventory import list_desktops, list_events  # noqa: E402

__all__ = [
    "EntitlementLine",
    "PoolStatus",
    "delete_pool",
    "entitled_pools",
    "get_entitlements",
    "get_pool_row",
    "list_desktops",
    "list_events",
    "list_pools",
    "load_directory",
    "pool_status",
    "recreate_pool",
    "save_pool",
    "set_entitlements",
    "spec_from_json",
    "spec_to_json",
    "status_of",
]
