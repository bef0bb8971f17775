"""A Hypothesis state machine over the real services, reconciler and sim driver (SQLite).

Random users connect, disconnect and release; time moves; the platform fails creates or goes
down; the template changes; admins Recreate and release. After **every** step the database,
the event log and the simulated platform are checked against the product's invariants (C2, C6,
R1, L1-L3, T1, T2, O2, S2). ``HOTDESK_STATEFUL_EXAMPLES`` / ``HOTDESK_STATEFUL_STEPS`` make
longer runs (defaults 25 / 25).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event as note_event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)
from sqlalchemy import select

from hotdesk.db.engine import Database
from hotdesk.db.models import (
    DesktopRow,
    EventRow,
    PoolRow,
    QueueEntryRow,
    SessionRow,
    TemplateRow,
)
from hotdesk.domain.claims import CardState
from hotdesk.domain.errors import Conflict
from hotdesk.domain.states import HELD_STATES, ON_PLATFORM_STATES, DesktopState
from hotdesk.providers.sim import SimPlatform
from hotdesk.services import bootstrap, catalog, claims, operations, pools
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.settings import ReconcilerSettings
from tests.support import FakeClock, SqliteTemplate, World, make_world

S = DesktopState
N_USERS = 6
SETTINGS = ReconcilerSettings(
    backoff_base_seconds=1,
    backoff_max_seconds=4,
    failed_keep_seconds=5,
    claim_grace_seconds=10,
    queue_ttl_seconds=60,
    max_create_attempts=3,
)
HELD = {s.value for s in HELD_STATES}
ON_PLATFORM = {s.value for s in ON_PLATFORM_STATES}
#: Waiting past every backoff window and the failed-desktop inspection time.
SETTLE_STEP = 6.0

USER_RELEASE = "released by user"
ADMIN_RELEASE = "immediate release by administrator"
RECREATE = "Recreate: failed or not on the current template revision"
FAILED_REMOVED = "failed desktop removed"

PLATFORM = f"stateful-{os.getpid()}"


@dataclass
class Prepared:
    """A migrated database with a tenant, its admin, six users, a sim provider and a template.

    Built once (hashing the admin's password is slow), copied for every example.
    """

    path: Path
    tenant_id: str
    user_ids: list[str]
    database: Database | None = None

    def fresh_database(self) -> Database:
        """The prepared database copied to the working file, behind one reused engine.

        Reusing the engine keeps SQLAlchemy's compiled-statement cache warm across examples.
        """
        work = self.path.with_name("work.db")
        if self.database is not None:
            self.database.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)
        shutil.copy(self.path, work)
        if self.database is None:
            self.database = Database(f"sqlite:///{work}")
        return self.database


_prepared: Prepared | None = None


def prepared() -> Prepared:
    """The prepared database, built on first use."""
    global _prepared
    if _prepared is None:
        directory = Path(tempfile.mkdtemp(prefix="hotdesk-stateful-template-"))
        atexit.register(shutil.rmtree, directory, True)
        url = SqliteTemplate(directory).fresh_url(directory)
        world = make_world(url, clock=FakeClock(), settings=SETTINGS)
        catalog.save_provider(
            world.ctx,
            world.admin,
            "sim",
            kind="sim",
            config={"platform": PLATFORM},
            max_concurrent_provisioning=1000,
        )
        user_ids = [world.user(f"u{i}").user_id or "" for i in range(N_USERS)]
        world.ctx.db.dispose()
        SimPlatform.forget(world.platform.name)
        _prepared = Prepared(directory / "hotdesk.db", world.tenant_id, user_ids)
    return _prepared


@dataclass
class Snapshot:
    """What the invariants look at after a step."""

    desktops: list[DesktopRow]
    open_sessions: list[SessionRow]
    waiting_users: set[str]
    events: list[EventRow]
    current_revision: str


@dataclass
class Replayed:
    """A desktop as the event log tells it (checked against the row)."""

    state: str
    user: str | None
    idle_since: datetime | None


class BrokerMachine(RuleBasedStateMachine):
    """One broker, one pool, six users, a simulated platform, fake time."""

    def __init__(self) -> None:
        super().__init__()
        base = prepared()
        SimPlatform.forget(PLATFORM)
        self.platform = SimPlatform.named(PLATFORM)
        self.clock = FakeClock()
        db = base.fresh_database()
        self.ctx = BrokerContext(
            db=db, broker_id=bootstrap.ensure_broker_id(db), settings=SETTINGS, clock=self.clock
        )
        self.world = World(
            ctx=self.ctx,
            clock=self.clock,
            admin=bootstrap.admin_actor(self.ctx, base.tenant_id),
            tenant_id=base.tenant_id,
            platform=self.platform,
        )
        self.loop = asyncio.new_event_loop()
        self.users = [
            Actor(tenant_id=base.tenant_id, user_id=uid, username=f"u{i}", role="user")
            for i, uid in enumerate(base.user_ids)
        ]
        self.pool_id = ""
        self.warm = self.max = 0
        self.retention = 0.0
        self.images = 0
        self.revision_of: dict[str, str] = {}  # desktop id -> revision it was built from
        self.replayed: dict[str, Replayed] = {}
        self.last_event_id = 0

    # --- set-up and tear-down ------------------------------------------------------------

    @initialize(
        warm=st.integers(1, 3),
        extra=st.integers(0, 2),
        retention=st.sampled_from([0, 30, 300]),
    )
    def make_pool(self, warm: int, extra: int, retention: int) -> None:
        self.warm, self.max, self.retention = warm, warm + extra, float(retention)
        self.world.pool("lab", warm=warm, max=self.max, retention=retention, users=self.users)
        self.pool_id = pools.get_pool_row(self.ctx, self.world.admin, "lab").id
        self._converge()
        self.revision_of = {d.id: d.template_revision_id for d in self._desktops()}

    def teardown(self) -> None:
        try:
            self.loop.run_until_complete(self.world.reconciler.drivers.close())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            self.ctx.db.dispose()
            SimPlatform.forget(PLATFORM)

    # --- helpers -------------------------------------------------------------------------

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _pass(self) -> None:
        self._run(self.world.reconciler.run_pass())
        self._run(self.world.reconciler.settle())

    def _converge(self) -> None:
        self._run(self.world.reconciler.converge())

    def _desktops(self) -> list[DesktopRow]:
        with self.ctx.db.read() as session:
            return list(
                session.scalars(
                    select(DesktopRow)
                    .where(DesktopRow.pool_id == self.pool_id)
                    .order_by(DesktopRow.sequence)
                )
            )

    def _live(self) -> list[DesktopRow]:
        return [d for d in self._desktops() if d.state != S.DELETED.value]

    def _held_by(self, user_id: str | None) -> DesktopRow | None:
        return next((d for d in self._live() if d.user_id == user_id), None)

    def _current_revision(self) -> str:
        with self.ctx.db.read() as session:
            pool = session.get(PoolRow, self.pool_id)
            assert pool is not None
            template = session.get(TemplateRow, pool.template_id)
            assert template is not None and template.current_revision_id is not None
            return template.current_revision_id

    def _fresh_waiting(self) -> list[QueueEntryRow]:
        fresh = self.clock() - timedelta(seconds=SETTINGS.queue_ttl_seconds)
        with self.ctx.db.read() as session:
            return list(
                session.scalars(
                    select(QueueEntryRow).where(
                        QueueEntryRow.pool_id == self.pool_id,
                        QueueEntryRow.state == "waiting",
                        QueueEntryRow.last_seen_at >= fresh,
                    )
                )
            )

    @staticmethod
    def _idle(desktops: list[DesktopRow]) -> list[DesktopRow]:
        idle_states = {S.READY.value, S.CREATING.value, S.BOOTING.value}
        return [d for d in desktops if d.user_id is None and d.state in idle_states]

    # --- rules: users --------------------------------------------------------------------

    @rule(who=st.integers(0, N_USERS - 1))
    def connect(self, who: int) -> None:
        user = self.users[who]
        live = self._live()
        before = self._held_by(user.user_id)
        waiting = self._fresh_waiting()
        ready_idle = [d for d in live if d.user_id is None and d.state == S.READY.value]
        provisioning_idle = [d for d in self._idle(live) if d.state != S.READY.value]
        card = claims.connect(self.ctx, user, "lab")
        after = self._held_by(user.user_id)
        if before is not None:  # C4: the same desktop, never a second one
            assert card.desktop_id == before.id
            assert after is not None and after.id == before.id
            return
        if after is not None:
            assert card.desktop_id == after.id
        if any(e.user_id == user.user_id for e in waiting):
            return  # a waiter asking again: served or kept in place (checked by invariants)
        if waiting:
            assert card.state is CardState.WAITING, "nobody jumps the queue"
        elif ready_idle:
            assert card.state is CardState.CONNECTED  # C3: Connect gets a ready desktop now
        elif provisioning_idle:
            assert card.state is CardState.PREPARING
        elif len(live) < self.max:
            assert card.state is CardState.PREPARING  # C5: created on demand
            assert after is not None and after.state == S.CREATING.value
        else:
            assert card.state is CardState.WAITING  # C5: pool full -> queue with position
        note_event(f"connect: {card.state.value}")
        if card.state is CardState.WAITING:
            assert card.position is not None and card.waiting is not None
            assert 1 <= card.position <= card.waiting

    @rule(whos=st.lists(st.integers(0, N_USERS - 1), min_size=2, max_size=4))
    def connect_several(self, whos: list[int]) -> None:
        for who in whos:
            self.connect(who)

    @rule(who=st.integers(0, N_USERS - 1))
    def disconnect(self, who: int) -> None:
        user = self.users[who]
        before = self._held_by(user.user_id)
        card = claims.disconnect(self.ctx, user, "lab")
        if before is not None and before.state == S.CONNECTED.value:
            assert card.state is CardState.DISCONNECTED
            expected = self.clock() + timedelta(seconds=self.retention)
            assert card.deadline == expected  # L4: the user sees how long it is kept

    @rule(who=st.integers(0, N_USERS - 1))
    def release(self, who: int) -> None:
        user = self.users[who]
        card = claims.release(self.ctx, user, "lab")
        assert card.state is CardState.UNASSIGNED
        assert self._held_by(user.user_id) is None

    @rule(who=st.integers(0, N_USERS - 1))
    def look_at_card(self, who: int) -> None:
        card = claims.my_card(self.ctx, self.users[who], "lab")
        held = self._held_by(self.users[who].user_id)
        assert card.desktop_id == (held.id if held is not None else None)

    # --- rules: time and the platform ----------------------------------------------------

    @rule(seconds=st.sampled_from([1, 4, 9, 29, 31, 61, 299, 301]))
    def advance_time(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule(trouble=st.sampled_from(["fail-1", "fail-4", "outage-on", "outage-off"]))
    def platform_trouble(self, trouble: str) -> None:
        if trouble.startswith("fail-"):
            self.platform.fail_next_creates = int(trouble.removeprefix("fail-"))
        else:
            self.platform.outage = trouble == "outage-on"

    @rule()
    def reconcile(self) -> None:
        self._pass()

    @rule()
    def sweep_twice(self) -> None:
        """R4: nothing the broker knows is a leak or lost while the platform is intact."""
        vms = set(self.platform.vms)
        self._run(self.world.reconciler.upkeep.sweep())
        self._run(self.world.reconciler.upkeep.sweep())
        assert set(self.platform.vms) == vms

    @rule(seconds=st.sampled_from([2, 11, 31, 301]))
    def advance_time_and_reconcile(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self._pass()

    # --- rules: admins -------------------------------------------------------------------

    @rule()
    def change_template(self) -> None:
        self.images += 1
        spec = {"image": f"image-{self.images}", "vcpus": 1, "memory_mib": 512}
        _, revision, changed = catalog.save_template(self.ctx, self.world.admin, "base", spec)
        assert changed
        assert self._current_revision() == revision.id

    @rule()
    def recreate(self) -> None:
        before = {d.id: d for d in self._live()}
        current = self._current_revision()
        targets = pools.recreate_pool(self.ctx, self.world.admin, "lab")
        for desktop_id in targets:  # T2: failed or stale idle ones only
            d = before[desktop_id]
            assert d.user_id is None
            assert d.state == S.FAILED.value or (
                d.state in {S.READY.value, S.CREATING.value, S.BOOTING.value}
                and d.template_revision_id != current
            )
        after = {d.id: d for d in self._live()}
        for desktop_id, d in before.items():
            if d.user_id is not None:  # assigned desktops are never touched
                assert (after[desktop_id].state, after[desktop_id].user_id) == (
                    d.state,
                    d.user_id,
                )
        for d in self._idle(list(after.values())):
            assert d.template_revision_id == current

    @rule(pick=st.integers(0, 10), assigned=st.booleans())
    def admin_release(self, pick: int, assigned: bool) -> None:
        live = [d for d in self._live() if d.state != S.DELETING.value]
        candidates = [d for d in live if (d.user_id is not None) == assigned]
        if not candidates:
            return
        desktop = candidates[pick % len(candidates)]
        if assigned:  # L3: immediate release, even while connected (force)
            operations.admin_release(self.ctx, self.world.admin, desktop.id, force=True)
            assert self._held_by(desktop.user_id) is None
            return
        with pytest.raises(Conflict):  # nobody's desktop: nothing to release
            operations.admin_release(self.ctx, self.world.admin, desktop.id, force=True)

    # --- rule: recovery ------------------------------------------------------------------

    @rule()
    def recover_and_converge(self) -> None:
        """Once the platform behaves, the pool settles at warm (R1, R3, S1)."""
        self.platform.outage = False
        self.platform.fail_next_creates = 0
        for _ in range(3):
            self.clock.advance(SETTLE_STEP)
            self._converge()
        live = self._live()
        assert not [d for d in live if d.state not in {s.value for s in HELD_STATES | {S.READY}}]
        held = [d for d in live if d.user_id is not None]
        idle = self._idle(live)
        assert len(idle) == min(self.warm, self.max - len(held)), [
            (d.name, d.state, d.user_id) for d in live
        ]
        if self._fresh_waiting():
            assert len(live) == self.max and not idle  # waiters only while the pool is full

    # --- invariants (one snapshot of the database per step) ------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        if not self.pool_id:
            return
        snap = self._snapshot()
        self._check_capacity_and_assignment(snap)
        self._check_sessions(snap)
        self._check_revisions(snap)
        self._check_platform(snap)
        self._check_event_log(snap)

    def _snapshot(self) -> Snapshot:
        fresh = self.clock() - timedelta(seconds=SETTINGS.queue_ttl_seconds)
        with self.ctx.db.read() as session:
            desktops = list(
                session.scalars(select(DesktopRow).where(DesktopRow.pool_id == self.pool_id))
            )
            ids = [d.id for d in desktops]
            return Snapshot(
                desktops=desktops,
                open_sessions=list(
                    session.scalars(
                        select(SessionRow).where(
                            SessionRow.desktop_id.in_(ids), SessionRow.ended_at.is_(None)
                        )
                    )
                ),
                waiting_users={
                    e.user_id
                    for e in session.scalars(
                        select(QueueEntryRow).where(
                            QueueEntryRow.pool_id == self.pool_id,
                            QueueEntryRow.state == "waiting",
                            QueueEntryRow.last_seen_at >= fresh,
                        )
                    )
                },
                events=list(
                    session.scalars(
                        select(EventRow)
                        .where(EventRow.pool_id == self.pool_id, EventRow.id > self.last_event_id)
                        .order_by(EventRow.id)
                    )
                ),
                current_revision=self._current_revision(),
            )

    def _check_capacity_and_assignment(self, snap: Snapshot) -> None:
        live = [d for d in snap.desktops if d.state != S.DELETED.value]
        assert len(live) <= self.max, "R1: never above max"
        assert len(self._idle(live)) <= self.warm, "R1: idle never overshoots warm"
        users = [d.user_id for d in live if d.user_id is not None]
        assert len(users) == len(set(users)), "C2: one desktop per user and pool"
        for d in live:
            if d.state in HELD:
                assert d.user_id is not None, f"{d.name} is {d.state} without a user"
            if d.state in {S.READY.value, S.FAILED.value, S.DELETING.value, S.LOST.value}:
                assert d.user_id is None, f"{d.name} is {d.state} with a user"
        assert not snap.waiting_users & set(users), "a waiting user holds no desktop"

    def _check_sessions(self, snap: Snapshot) -> None:
        """At most one open session per desktop, owned by the desktop's user (C6)."""
        desktops = {d.id: d for d in snap.desktops}
        per_desktop: dict[str, int] = {}
        for row in snap.open_sessions:
            per_desktop[row.desktop_id] = per_desktop.get(row.desktop_id, 0) + 1
            desktop = desktops[row.desktop_id]
            assert desktop.state == S.CONNECTED.value, f"open session on {desktop.state}"
            assert row.user_id == desktop.user_id
        assert all(n == 1 for n in per_desktop.values())
        for d in snap.desktops:
            if d.state == S.CONNECTED.value:
                assert per_desktop.get(d.id) == 1, f"{d.name} connected without a session"

    def _check_revisions(self, snap: Snapshot) -> None:
        """T1: a desktop keeps the revision it was built from; new ones use the current one."""
        for d in snap.desktops:
            if d.id not in self.revision_of:  # made during the last step
                assert d.template_revision_id == snap.current_revision, (
                    f"{d.name} built from an old revision"
                )
                self.revision_of[d.id] = d.template_revision_id
            assert d.template_revision_id == self.revision_of[d.id], f"{d.name} changed revision"

    def _check_platform(self, snap: Snapshot) -> None:
        """No leaked VM; every desktop that should have a VM has one (R4, S2)."""
        live_names = {d.name for d in snap.desktops if d.state != S.DELETED.value}
        vms = set(self.platform.vms)
        assert vms <= live_names, f"leaked VMs: {vms - live_names}"
        missing = {d.name for d in snap.desktops if d.state in ON_PLATFORM} - vms
        assert not missing, f"desktops without a VM: {missing}"

    def _check_event_log(self, snap: Snapshot) -> None:
        """Every state change is in the log (O2); destroying a user's desktop needs a reason."""
        for event in snap.events:
            self.last_event_id = event.id
            if event.desktop_id is None:
                continue
            if event.kind == "assigned":
                d = self.replayed[event.desktop_id]
                user = (event.data or {})["user_id"]
                assert d.user in (None, user), "a desktop handed to a second user"
                d.user = user
            elif event.kind == "state":
                self._replay_state(event)
        for d in snap.desktops:
            r = self.replayed[d.id]
            assert (r.state, r.user) == (d.state, d.user_id), d.name
            assert r.idle_since == d.idle_since, d.name

    def _replay_state(self, event: EventRow) -> None:
        assert event.desktop_id is not None and event.to_state is not None
        if event.from_state is None:
            assert event.to_state == S.CREATING.value
            user = (event.data or {}).get("user_id")
            self.replayed[event.desktop_id] = Replayed(S.CREATING.value, user, None)
            return
        d = self.replayed[event.desktop_id]
        assert d.state == event.from_state, f"log skips a state: {d.state} -> {event.from_state}"
        if event.to_state == S.DELETING.value:
            self._check_destroy(event, d)
        d.state = event.to_state
        if event.to_state in {S.DELETING.value, S.LOST.value, S.FAILED.value}:
            d.user, d.idle_since = None, None
        if event.to_state in {S.ASSIGNED.value, S.DISCONNECTED.value}:
            d.idle_since = event.at
        elif event.to_state in {S.CONNECTED.value, S.READY.value}:
            d.idle_since = None

    def _check_destroy(self, event: EventRow, d: Replayed) -> None:
        note_event(f"destroyed: {event.reason.split(' ')[0]} (user: {d.user is not None})")
        if d.user is None:  # nobody's desktop: Recreate or clean-up of a failed one
            assert event.reason in {RECREATE, FAILED_REMOVED}, event.reason
            if event.reason == FAILED_REMOVED:
                assert event.from_state == S.FAILED.value
            return
        if event.reason in {USER_RELEASE, ADMIN_RELEASE}:
            return
        assert event.reason.startswith("retention ") and "expired" in event.reason, (
            f"a user's {event.from_state} desktop destroyed: {event.reason!r}"
        )
        assert event.from_state in {S.ASSIGNED.value, S.DISCONNECTED.value}, event.from_state
        assert d.idle_since is not None
        keep = timedelta(seconds=self.retention)
        if event.from_state == S.ASSIGNED.value:
            keep = max(keep, timedelta(seconds=SETTINGS.claim_grace_seconds))
        assert event.at >= d.idle_since + keep, "destroyed inside its retention (L1)"


BrokerMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("HOTDESK_STATEFUL_EXAMPLES", "25")),
    stateful_step_count=int(os.environ.get("HOTDESK_STATEFUL_STEPS", "25")),
    deadline=None,
)
TestBrokerMachine = BrokerMachine.TestCase
