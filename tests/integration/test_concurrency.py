"""C5, C6 under real concurrency, on SQLite and PostgreSQL: many threads call Connect at once.

No desktop goes to two users, no user gets two desktops, the pool never exceeds ``max``, and
the waiting queue is first come, first served with distinct positions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from sqlalchemy import select

from hotdesk.db.models import DesktopRow, QueueEntryRow, SessionRow, UserRow
from hotdesk.domain.claims import CardState
from hotdesk.domain.states import DesktopState
from hotdesk.services import catalog, claims, pools, reconcile
from hotdesk.services.claims import Card
from hotdesk.services.context import Actor
from hotdesk.services.directory import save_group
from hotdesk.services.pools import EntitlementLine
from tests.support import World

S = DesktopState
T = TypeVar("T")


def make_users(world: World, prefix: str, count: int) -> list[Actor]:
    """``count`` users in one transaction, entitled through the group ``prefix``."""
    names = [f"{prefix}-{i:03d}" for i in range(count)]
    with world.ctx.db.write() as session:
        rows = [
            UserRow(tenant_id=world.tenant_id, username=n, role="user", created_at=world.ctx.now())
            for n in names
        ]
        session.add_all(rows)
        session.flush()
        ids = [r.id for r in rows]
    save_group(world.ctx, world.admin, prefix, names)
    return [
        Actor(tenant_id=world.tenant_id, user_id=uid, username=n, role="user")
        for uid, n in zip(ids, names, strict=True)
    ]


def entitle_groups(world: World, pool: str, groups: Iterable[str]) -> None:
    pools.set_entitlements(
        world.ctx, world.admin, pool, [EntitlementLine("group", g) for g in groups]
    )


def in_parallel(calls: list[Callable[[], T]], workers: int = 64) -> list[T]:
    """Run the calls on a thread pool, all released at once; re-raise the first error."""
    with ThreadPoolExecutor(workers) as executor:
        futures = [executor.submit(call) for call in calls]
        return [f.result() for f in futures]


def connect_all(world: World, users: list[Actor], pool: str) -> list[Card]:
    return in_parallel([lambda u=u: claims.connect(world.ctx, u, pool) for u in users])


def desktops_of(world: World, pool: str) -> list[DesktopRow]:
    pool_id = pools.get_pool_row(world.ctx, world.admin, pool).id
    with world.ctx.db.read() as session:
        return list(session.scalars(select(DesktopRow).where(DesktopRow.pool_id == pool_id)))


def waiting_entries(world: World, pool: str) -> list[QueueEntryRow]:
    pool_id = pools.get_pool_row(world.ctx, world.admin, pool).id
    with world.ctx.db.read() as session:
        return list(
            session.scalars(
                select(QueueEntryRow)
                .where(QueueEntryRow.pool_id == pool_id, QueueEntryRow.state == "waiting")
                .order_by(QueueEntryRow.seq)
            )
        )


def entries_by_user(world: World, pool: str) -> dict[str, QueueEntryRow]:
    pool_id = pools.get_pool_row(world.ctx, world.admin, pool).id
    with world.ctx.db.read() as session:
        return {
            e.user_id: e
            for e in session.scalars(select(QueueEntryRow).where(QueueEntryRow.pool_id == pool_id))
        }


def open_sessions(world: World) -> list[SessionRow]:
    with world.ctx.db.read() as session:
        return list(session.scalars(select(SessionRow).where(SessionRow.ended_at.is_(None))))


def holders(desktops: list[DesktopRow]) -> dict[str, str]:
    """user id -> desktop id of live held desktops; fails on any double assignment."""
    live = [d for d in desktops if d.state != S.DELETED.value and d.user_id is not None]
    users = Counter(d.user_id for d in live)
    assert max(users.values(), default=1) == 1, "a user holds two desktops (C2)"
    return {d.user_id: d.id for d in live if d.user_id is not None}


# --- 200 users, warm 50, max 120 -----------------------------------------------------------


async def test_200_concurrent_claims_never_double_assign(world: World) -> None:
    users = make_users(world, "crowd", 200)
    world.pool("rush", warm=50, max=120, retention=600, provision_concurrency=50)
    entitle_groups(world, "rush", ["crowd"])
    await world.reconciler.converge()
    before = desktops_of(world, "rush")
    assert Counter(d.state for d in before) == {S.READY.value: 50}

    cards = connect_all(world, users, "rush")

    desktops = desktops_of(world, "rush")
    live = [d for d in desktops if d.state != S.DELETED.value]
    assert len(live) == 120, "never above max, and every slot used"
    held = holders(desktops)
    assert len(held) == min(len(users), 120)
    assert len(set(held.values())) == len(held), "a desktop went to two users (C6)"

    by_user = {u.user_id: card for u, card in zip(users, cards, strict=True)}
    states = Counter(card.state for card in cards)
    assert states == {CardState.CONNECTED: 50, CardState.PREPARING: 70, CardState.WAITING: 80}
    for user_id, desktop_id in held.items():
        assert by_user[user_id].desktop_id == desktop_id  # each card names its own desktop

    waiting = waiting_entries(world, "rush")
    assert len(waiting) == 80
    assert not {e.user_id for e in waiting} & set(held), "a holder also waits"
    positions = sorted(card.position or 0 for card in cards if card.state is CardState.WAITING)
    assert positions == list(range(1, 81)), "queue positions are 1..n without duplicates"
    for rank, entry in enumerate(waiting, start=1):  # positions follow the queue order
        assert by_user[entry.user_id].position == rank

    sessions = open_sessions(world)
    assert len(sessions) == 50
    connected = {d.id: d for d in live if d.state == S.CONNECTED.value}
    assert {s.desktop_id for s in sessions} == set(connected)
    for s in sessions:
        assert connected[s.desktop_id].user_id == s.user_id

    await world.reconciler.converge()  # the 70 on-demand desktops boot for their users
    after = desktops_of(world, "rush")
    assert Counter(d.state for d in after if d.state != S.DELETED.value) == {
        S.CONNECTED.value: 50,
        S.ASSIGNED.value: 70,
    }
    assert holders(after) == held
    assert len(waiting_entries(world, "rush")) == 80  # full: nobody is served yet


@pytest.mark.parametrize("mode", ["ready", "on-demand", "queue"])
async def test_same_user_connecting_20_times_gets_one_desktop(world: World, mode: str) -> None:
    """C2/C4: twenty simultaneous Connects of one user: one desktop (or one place in line)."""
    user = world.user("hasty")
    others = [world.user(f"other-{i}") for i in range(2)]
    world.pool("solo", warm=2, max=2, retention=600, users=[user, *others])
    if mode != "on-demand":  # on-demand: nothing is prepared yet, Connect creates
        await world.reconciler.converge()
    if mode == "queue":
        for other in others:
            claims.connect(world.ctx, other, "solo")

    cards = in_parallel([lambda: claims.connect(world.ctx, user, "solo")] * 20, workers=20)

    desktops = desktops_of(world, "solo")
    live = [d for d in desktops if d.state != S.DELETED.value]
    assert len(live) <= 2
    mine = [d for d in live if d.user_id == user.user_id]
    waits = [e for e in waiting_entries(world, "solo") if e.user_id == user.user_id]
    if mode == "queue":
        assert mine == [] and len(waits) == 1
        assert {c.state for c in cards} == {CardState.WAITING}
        assert {c.position for c in cards} == {1}
        return
    assert len(mine) == 1
    assert {c.desktop_id for c in cards} == {mine[0].id}
    assert waits == []
    if mode == "ready":
        assert [s.desktop_id for s in open_sessions(world)] == [mine[0].id]  # one, not twenty
        assert len([d for d in live if d.user_id is None]) == 1  # the other stays idle
    else:
        assert len(live) == 1 and mine[0].state == S.CREATING.value


# --- FIFO -------------------------------------------------------------------------------


async def test_queue_is_served_in_arrival_order_under_concurrency(world: World) -> None:
    first, second = world.user("first"), world.user("second")
    crowd = make_users(world, "queue", 30)
    world.pool("tiny", warm=1, max=2, retention=600)
    pools.set_entitlements(
        world.ctx,
        world.admin,
        "tiny",
        [
            EntitlementLine("user", "first"),
            EntitlementLine("user", "second"),
            EntitlementLine("group", "queue"),
        ],
    )
    await world.reconciler.converge()
    for holder in (first, second):
        claims.connect(world.ctx, holder, "tiny")
    await world.reconciler.converge()
    assert len(holders(desktops_of(world, "tiny"))) == 2

    cards = connect_all(world, crowd, "tiny")
    assert {c.state for c in cards} == {CardState.WAITING}
    assert sorted(c.position or 0 for c in cards) == list(range(1, 31))
    queue = waiting_entries(world, "tiny")
    by_user = {u.user_id: card for u, card in zip(crowd, cards, strict=True)}
    for rank, entry in enumerate(queue, start=1):
        assert by_user[entry.user_id].position == rank
    order = [e.user_id for e in queue]  # arrival order = seq order
    actor_of = {u.user_id: u for u in [first, second, *crowd]}

    in_turn = [first.user_id, second.user_id]  # who holds, oldest first
    served: list[str] = []
    for step in range(30):
        leaving = actor_of[in_turn.pop(0)]
        claims.release(world.ctx, leaving, "tiny")  # one desktop frees up
        await world.reconciler.run_pass()  # its VM goes; the slot goes to the head of the line
        await world.reconciler.settle()
        held = holders(desktops_of(world, "tiny"))
        newcomers = set(held) - set(in_turn)
        assert len(newcomers) == 1, f"step {step}: served {len(newcomers)} at once"
        newcomer = newcomers.pop()
        served.append(newcomer)
        in_turn.append(newcomer)
        assert served == order[: len(served)], "served out of arrival order"
        if step % 10 == 0:  # the rest still see 1..k, in order
            rest = order[len(served) :]
            cards_now = [claims.my_card(world.ctx, actor_of[u], "tiny") for u in rest]
            assert [c.position for c in cards_now] == list(range(1, len(rest) + 1))
        assert len([d for d in desktops_of(world, "tiny") if d.state != "deleted"]) <= 2
    assert waiting_entries(world, "tiny") == []
    await world.reconciler.converge()
    assert len(holders(desktops_of(world, "tiny"))) == 2
    entries = entries_by_user(world, "tiny")
    assert all(entries[u].state == "served" and entries[u].desktop_id for u in order)


async def test_users_who_stop_polling_leave_the_queue(world: World) -> None:
    holder_a, holder_b = world.user("ha"), world.user("hb")
    crowd = make_users(world, "line", 6)
    world.pool("tiny", warm=1, max=2, retention=600)
    pools.set_entitlements(
        world.ctx,
        world.admin,
        "tiny",
        [
            EntitlementLine("user", "ha"),
            EntitlementLine("user", "hb"),
            EntitlementLine("group", "line"),
        ],
    )
    assert world.clock is not None
    await world.reconciler.converge()
    for holder in (holder_a, holder_b):
        claims.connect(world.ctx, holder, "tiny")
    await world.reconciler.converge()
    for user in crowd:  # in this order: seq order is the list order
        assert claims.connect(world.ctx, user, "tiny").state is CardState.WAITING
    ttl = world.ctx.settings.queue_ttl_seconds
    pollers, quitters = crowd[1::2], crowd[0::2]  # every other user keeps polling

    world.clock.advance(ttl * 2 / 3)
    for user in pollers:
        claims.my_card(world.ctx, user, "tiny")
    world.clock.advance(ttl * 2 / 3)  # quitters silent for 4/3 ttl, pollers for 2/3 ttl
    cards = {u.username: claims.my_card(world.ctx, u, "tiny") for u in crowd}
    for user in quitters:
        assert cards[user.username].state is CardState.UNASSIGNED
    assert [cards[u.username].position for u in pollers] == [1, 2, 3]

    claims.release(world.ctx, holder_a, "tiny")
    await world.reconciler.converge()
    entries = entries_by_user(world, "tiny")
    assert {entries[u.user_id or ""].state for u in quitters} == {"expired"}
    assert entries[pollers[0].user_id or ""].state == "served"  # first poller, not a quitter
    assert [e.user_id for e in waiting_entries(world, "tiny")] == [u.user_id for u in pollers[1:]]


async def test_a_user_back_after_the_queue_ttl_joins_at_the_end(world: World) -> None:
    """A stale place in the queue is not revived by coming back: the user queues anew."""
    holder_a, holder_b = world.user("ha"), world.user("hb")
    early, late = world.user("early"), world.user("late")
    world.pool("tiny", warm=1, max=2, retention=600, users=[holder_a, holder_b, early, late])
    assert world.clock is not None
    await world.reconciler.converge()
    for holder in (holder_a, holder_b):
        claims.connect(world.ctx, holder, "tiny")
    await world.reconciler.converge()
    assert claims.connect(world.ctx, early, "tiny").position == 1
    world.clock.advance(world.ctx.settings.queue_ttl_seconds + 1)  # early stopped polling
    assert claims.connect(world.ctx, late, "tiny").position == 1  # early no longer counts
    back = claims.connect(world.ctx, early, "tiny")  # before any reconcile pass ran
    assert back.state is CardState.WAITING
    assert back.position == 2, "a user back from a stale wait must not jump ahead"
    claims.release(world.ctx, holder_a, "tiny")
    await world.reconciler.converge()
    assert holders(desktops_of(world, "tiny")).keys() == {holder_b.user_id, late.user_id}


# --- races between the reconciler/admins and Connect (PostgreSQL: row locks, no global lock) --


def _postgres_only(world: World) -> None:
    if not world.ctx.db.is_postgres:
        pytest.skip("SQLite runs one write transaction at a time: this interleaving cannot occur")


def _in_another_thread(call: Callable[[], T]) -> T:
    with ThreadPoolExecutor(1) as executor:
        return executor.submit(call).result(timeout=30)


async def test_reconnect_racing_retention_expiry_keeps_the_desktop(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """L1: the pass planned to expire a disconnected desktop, but its user reconnected first."""
    _postgres_only(world)
    alice = world.user("alice")
    world.pool("lab", warm=1, max=2, retention=60, users=[alice])
    await world.reconciler.converge()
    desktop_id = claims.connect(world.ctx, alice, "lab").desktop_id
    claims.disconnect(world.ctx, alice, "lab")
    assert world.clock is not None
    world.clock.advance(61)
    planned = reconcile._plan

    def plan_then_reconnect(session: Any, ctx: Any, pool: Any, now: Any) -> Any:
        plan, rows = planned(session, ctx, pool, now)
        assert plan.expire == (desktop_id,)
        card = _in_another_thread(lambda: claims.connect(world.ctx, alice, "lab"))
        assert card.state is CardState.CONNECTED and card.desktop_id == desktop_id
        return plan, rows

    monkeypatch.setattr(reconcile, "_plan", plan_then_reconnect)
    pool_id = pools.get_pool_row(world.ctx, world.admin, "lab").id
    reconcile.plan_pool_pass(world.ctx, pool_id)

    desktop = next(d for d in desktops_of(world, "lab") if d.id == desktop_id)
    assert (desktop.state, desktop.user_id) == (S.CONNECTED.value, alice.user_id)
    assert [s.desktop_id for s in open_sessions(world)] == [desktop_id]


async def test_claim_racing_recreate_keeps_the_claimed_desktop(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T2: Recreate chose a stale idle desktop, but a user claimed it first."""
    _postgres_only(world)
    bob = world.user("bob")
    world.pool("lab", warm=1, max=2, retention=60, users=[bob])
    await world.reconciler.converge()
    catalog.save_template(world.ctx, world.admin, "base", {"image": "new-image"})
    chosen = pools.recreate_targets
    raced: list[str] = []

    def targets_then_claim(desktops: Any, current: Any) -> list[str]:
        targets = chosen(desktops, current)
        if not raced:  # the first look over the pool: bob claims the chosen desktop now
            assert len(targets) == 1
            card = _in_another_thread(lambda: claims.connect(world.ctx, bob, "lab"))
            assert card.desktop_id == targets[0]
            raced.append(targets[0])
        return targets

    monkeypatch.setattr(pools, "recreate_targets", targets_then_claim)
    pools.recreate_pool(world.ctx, world.admin, "lab")

    claimed = next(d for d in desktops_of(world, "lab") if d.id == raced[0])
    assert (claimed.state, claimed.user_id) == (S.CONNECTED.value, bob.user_id)
