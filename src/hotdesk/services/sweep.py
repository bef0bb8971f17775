"""R4: the database side of the leak sweep and of lost-VM detection (rule 7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hotdesk.db.models import DesktopRow, LeakSuspectRow, ProviderRow
from hotdesk.domain.names import TAG_DESKTOP
from hotdesk.domain.states import ON_PLATFORM_STATES, DesktopState
from hotdesk.providers.base import Instance, InstanceRef
from hotdesk.services.context import BrokerContext
from hotdesk.services.events import lock_desktop, move_desktop, record_event
from hotdesk.services.sessions import release_desktop

ACTOR = "system:sweeper"
LIVE_ON_PLATFORM = [s.value for s in ON_PLATFORM_STATES]


@dataclass
class SweepResult:
    """What one sweep of one provider found."""

    leaks_to_delete: list[InstanceRef] = field(default_factory=list)
    new_suspects: list[str] = field(default_factory=list)
    maybe_lost: list[tuple[str, InstanceRef]] = field(default_factory=list)


def provider_ids(ctx: BrokerContext) -> list[str]:
    """Every provider the sweep should list."""
    with ctx.db.read() as session:
        return list(session.scalars(select(ProviderRow.id)))


def reconcile_listing(
    ctx: BrokerContext, provider_id: str, instances: list[Instance], listed_at: datetime
) -> SweepResult:
    """Compare a platform listing (taken before this call) with the database.

    A tagged VM whose desktop the database does not know (or knows as deleted) is a suspect;
    a suspect seen again on the next sweep is a leak to delete. A desktop that should be on
    the platform but is absent from the listing may be lost (the caller confirms).
    """
    result = SweepResult()
    with ctx.db.write() as session:
        known = _known_desktops(session, provider_id)
        listed_ids = set()
        for inst in instances:
            desktop_id = inst.tags.get(TAG_DESKTOP, "")
            listed_ids.add(desktop_id)
            if desktop_id in known:
                continue
            _note_suspect(session, provider_id, inst, listed_at, result)
        _forget_absent_suspects(session, provider_id, {i.ref.name for i in instances})
        for row in session.scalars(
            select(DesktopRow).where(
                DesktopRow.provider_id == provider_id,
                DesktopRow.state.in_(LIVE_ON_PLATFORM),
                DesktopRow.state_since < listed_at,
            )
        ):
            if row.id not in listed_ids:
                ref = InstanceRef(name=row.name, platform_id=row.platform_id, host=row.host)
                result.maybe_lost.append((row.id, ref))
    return result


def _known_desktops(session: Session, provider_id: str) -> set[str]:
    return set(
        session.scalars(
            select(DesktopRow.id).where(
                DesktopRow.provider_id == provider_id,
                DesktopRow.state != DesktopState.DELETED.value,
            )
        )
    )


def _note_suspect(
    session: Session, provider_id: str, inst: Instance, now: datetime, result: SweepResult
) -> None:
    suspect = session.get(LeakSuspectRow, (provider_id, inst.ref.name))
    if suspect is None:
        session.add(
            LeakSuspectRow(
                provider_id=provider_id,
                vm_name=inst.ref.name,
                platform_id=inst.ref.platform_id,
                first_seen_at=now,
                last_sweep=1,
            )
        )
        result.new_suspects.append(inst.ref.name)
    else:
        suspect.last_sweep += 1
        result.leaks_to_delete.append(inst.ref)


def _forget_absent_suspects(session: Session, provider_id: str, present: set[str]) -> None:
    for suspect in session.scalars(
        select(LeakSuspectRow).where(LeakSuspectRow.provider_id == provider_id)
    ):
        if suspect.vm_name not in present:
            session.delete(suspect)


def record_leak_deleted(ctx: BrokerContext, provider_id: str, ref: InstanceRef) -> None:
    """Write down that a leaked VM was destroyed."""
    with ctx.db.write() as session:
        provider = session.get(ProviderRow, provider_id)
        session.execute(
            delete(LeakSuspectRow).where(
                LeakSuspectRow.provider_id == provider_id, LeakSuspectRow.vm_name == ref.name
            )
        )
        if provider is not None:
            record_event(
                session,
                tenant_id=provider.tenant_id,
                actor=ACTOR,
                kind="leak-deleted",
                now=ctx.now(),
                reason=f"tagged VM {ref.name!r} unknown to the database on two consecutive sweeps",
                data={"vm": ref.name, "provider": provider.name},
            )


def mark_lost(ctx: BrokerContext, desktop_id: str) -> str | None:
    """R4: the VM vanished; the desktop is lost and goes to deletion. Returns its pool id."""
    with ctx.db.write() as session:
        now = ctx.now()
        desktop = lock_desktop(session, desktop_id)
        if desktop is None or desktop.state not in LIVE_ON_PLATFORM:
            return None
        move_desktop(
            session,
            desktop,
            DesktopState.LOST,
            actor=ACTOR,
            now=now,
            reason="the VM vanished from the platform",
        )
        # ends the user's open session too: nobody is connected to a VM that is gone
        release_desktop(
            session, desktop, actor=ACTOR, now=now, reason="clean up what is left of a lost VM"
        )
        pool_id = desktop.pool_id
    ctx.wakeups.notify(pool_id)
    return pool_id
