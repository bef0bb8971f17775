"""O1 operations on one desktop. Power and log operations are queued for the reconciler,
which alone talks to platforms; release and delete are state changes done here."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from hotdesk.db.models import DesktopRow, OperationRow, PoolRow, UserRow
from hotdesk.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from hotdesk.domain.pools import PermissionRule, allowed_actions
from hotdesk.domain.states import DesktopState
from hotdesk.providers.base import InstanceRef
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.events import record_event
from hotdesk.services.sessions import release_desktop

S = DesktopState
OPERATION_KINDS = {
    "power-on": "start",
    "power-off": "stop",
    "restart": "restart",
    "force-restart": "reset",
    "console-log": None,
}
POWERED_STATES = {
    S.READY.value,
    S.ASSIGNED.value,
    S.CONNECTED.value,
    S.DISCONNECTED.value,
    S.BOOTING.value,
    S.FAILED.value,
}


@dataclass(frozen=True)
class OperationJob:
    """A queued operation the reconciler carries out."""

    operation_id: str
    desktop_id: str
    provider_id: str
    kind: str
    ref: InstanceRef


def get_desktop_for(ctx_session: object, actor: Actor, desktop_id: str) -> DesktopRow:
    """Load a desktop the actor may see: admins see their tenant's, users their own."""
    from sqlalchemy.orm import Session

    assert isinstance(ctx_session, Session)
    desktop = ctx_session.get(DesktopRow, desktop_id)
    if desktop is None or desktop.tenant_id != actor.tenant_id:
        raise NotFound("desktop", desktop_id)
    if not actor.is_admin and desktop.user_id != actor.user_id:
        raise NotFound("desktop", desktop_id)
    return desktop


def request_operation(ctx: BrokerContext, actor: Actor, desktop_id: str, kind: str) -> str:
    """Queue a power or log operation on a desktop; return the operation id."""
    if kind not in OPERATION_KINDS:
        raise ValidationFailed(
            "kind", f"unknown operation {kind!r} (known: {', '.join(OPERATION_KINDS)})"
        )
    with ctx.db.write() as session:
        desktop = get_desktop_for(session, actor, desktop_id)
        _check_permission(session, actor, desktop, kind)
        if desktop.state not in POWERED_STATES:
            raise Conflict(f"desktop {desktop.name!r} is {desktop.state}: {kind} is not possible")
        op = OperationRow(
            tenant_id=desktop.tenant_id,
            desktop_id=desktop.id,
            kind=kind,
            state="pending",
            requested_by=actor.label,
            requested_at=ctx.now(),
        )
        session.add(op)
        session.flush()
        record_event(
            session,
            tenant_id=desktop.tenant_id,
            actor=actor,
            kind="operation",
            now=ctx.now(),
            reason=f"{kind} requested",
            pool_id=desktop.pool_id,
            desktop_id=desktop.id,
            data={"operation_id": op.id},
        )
        op_id, pool_id = op.id, desktop.pool_id
    ctx.wakeups.notify(pool_id)
    return op_id


def _check_permission(session: object, actor: Actor, desktop: DesktopRow, kind: str) -> None:
    needed = OPERATION_KINDS[kind]
    if actor.is_admin:
        return
    if needed is None:
        raise Forbidden("only administrators may read console logs")
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    pool = session.get(PoolRow, desktop.pool_id)
    rules = [
        PermissionRule(may=tuple(r.get("may", ())), user=r.get("user"), role=r.get("role"))
        for r in (pool.spec.get("permissions") or [] if pool else [])
    ]
    if needed not in allowed_actions(rules, username=actor.username, role=actor.role):
        raise Forbidden(f"pool permissions do not allow you to {needed} this desktop")


def get_operation(ctx: BrokerContext, actor: Actor, operation_id: str) -> OperationRow:
    """An operation's state and result."""
    with ctx.db.read() as session:
        op = session.get(OperationRow, operation_id)
        if op is None or op.tenant_id != actor.tenant_id:
            raise NotFound("operation", operation_id)
        get_desktop_for(session, actor, op.desktop_id)
        return op


def take_pending_operations(ctx: BrokerContext, limit: int = 50) -> list[OperationJob]:
    """Claim pending operations for this process (marks them running)."""
    with ctx.db.write() as session:
        rows = session.scalars(
            select(OperationRow)
            .where(OperationRow.state == "pending")
            .order_by(OperationRow.requested_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        jobs = []
        for op in rows:
            desktop = session.get(DesktopRow, op.desktop_id)
            op.state = "running"
            if desktop is None:
                continue
            ref = InstanceRef(name=desktop.name, platform_id=desktop.platform_id, host=desktop.host)
            jobs.append(OperationJob(op.id, desktop.id, desktop.provider_id, op.kind, ref))
    return jobs


def finish_operation(ctx: BrokerContext, job: OperationJob, *, ok: bool, result: str) -> None:
    """Store an operation's outcome and log it."""
    with ctx.db.write() as session:
        op = session.get(OperationRow, job.operation_id)
        desktop = session.get(DesktopRow, job.desktop_id)
        if op is None:
            return
        op.state = "done" if ok else "failed"
        op.result = result
        op.finished_at = ctx.now()
        if desktop is not None:
            if ok and job.kind == "power-off":
                desktop.power_state = "stopped"
            elif ok and job.kind in ("power-on", "restart", "force-restart"):
                desktop.power_state = "running"
            summary = "done" if ok else f"failed: {result}"
            record_event(
                session,
                tenant_id=desktop.tenant_id,
                actor="system:reconciler",
                kind="operation",
                now=ctx.now(),
                reason=f"{job.kind} {summary}",
                pool_id=desktop.pool_id,
                desktop_id=desktop.id,
                data={"operation_id": op.id},
            )


def admin_release(
    ctx: BrokerContext,
    actor: Actor,
    desktop_id: str,
    *,
    force: bool = False,
    reason: str = "immediate release by administrator",
) -> None:
    """L3: destroy an assigned desktop now, skipping retention (connected needs ``force``)."""
    _destroy(ctx, actor, desktop_id, force=force, reason=reason, require_assigned=True)


def delete_desktop(
    ctx: BrokerContext, actor: Actor, desktop_id: str, *, force: bool = False
) -> None:
    """O1 delete: destroy any desktop now (a connected one needs ``force``)."""
    _destroy(
        ctx,
        actor,
        desktop_id,
        force=force,
        reason="deleted by administrator",
        require_assigned=False,
    )


def _destroy(
    ctx: BrokerContext,
    actor: Actor,
    desktop_id: str,
    *,
    force: bool,
    reason: str,
    require_assigned: bool,
) -> None:
    if not actor.is_admin:
        raise Forbidden("only administrators may do this")
    with ctx.db.write() as session:
        desktop = get_desktop_for(session, actor, desktop_id)
        if desktop.state in (S.DELETING.value, S.DELETED.value):
            raise Conflict(f"desktop {desktop.name!r} is already {desktop.state}")
        if require_assigned and desktop.user_id is None:
            raise Conflict(f"desktop {desktop.name!r} is not assigned to anyone")
        if desktop.state == S.CONNECTED.value and not force:
            user = session.get(UserRow, desktop.user_id) if desktop.user_id else None
            who = user.username if user else "a user"
            raise Conflict(f"{who} is connected to {desktop.name!r}; pass force=true to proceed")
        release_desktop(session, desktop, actor=actor, now=ctx.now(), reason=reason)
        pool_id = desktop.pool_id
    ctx.wakeups.notify(pool_id)
