"""Wake-ups reach other broker processes: LISTEN/NOTIFY on PostgreSQL, polling on SQLite."""

from __future__ import annotations

import asyncio
import time

from hotdesk.db.engine import Database
from hotdesk.reconciler.relay import EventPollingRelay, PostgresWakeupRelay, make_relay
from hotdesk.services import claims, pools
from hotdesk.services.context import BrokerContext
from tests.support import World


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_a_claim_in_one_process_wakes_the_pool_in_another(world: World) -> None:
    alice = world.user("alice")
    world.pool("lab", warm=1, max=2, users=[alice])
    pool_id = pools.get_pool_row(world.ctx, world.admin, "lab").id
    other = BrokerContext(
        db=Database(world.ctx.db.url), broker_id=world.ctx.broker_id, settings=world.ctx.settings
    )
    here, there = make_relay(world.ctx, "broker-a"), make_relay(other, "broker-b")
    for relay in (here, there):
        relay.start()
    try:
        if isinstance(there, PostgresWakeupRelay):
            assert wait_for(there.listening.is_set)
        other.wakeups.take()
        world.ctx.wakeups.take()

        claims.connect(world.ctx, alice, "lab")  # the pool must refill: a hint is sent

        received: set[str] = set()
        assert wait_for(lambda: received.update(other.wakeups.take()) or pool_id in received)
        if isinstance(here, PostgresWakeupRelay):
            assert here.sent >= 1 and here.received == 0, "a process ignores its own hints"
    finally:
        for relay in (here, there):
            relay.stop()
        other.db.dispose()


def test_sqlite_polling_skips_the_reconcilers_own_events(sqlite_world: World) -> None:
    world = sqlite_world
    alice = world.user("alice")
    world.pool("lab", warm=1, max=2, users=[alice])
    pool_id = pools.get_pool_row(world.ctx, world.admin, "lab").id
    poller = EventPollingRelay(world.ctx, interval=60)
    poller.start()
    try:
        assert poller.poll_once() == set()
        asyncio.run(world.reconciler.converge())  # only system:reconciler events
        assert poller.poll_once() == set(), "the lease holder wrote those; nobody else cares"
        claims.connect(world.ctx, alice, "lab")
        assert poller.poll_once() == {pool_id}
        assert poller.poll_once() == set(), "each event wakes once"
    finally:
        poller.stop()
