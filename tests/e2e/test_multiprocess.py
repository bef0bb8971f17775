"""Several real ``hotdesk serve`` processes on one database (issue: scale-out and resilience).

The platform is SIMULATED (``sim`` with a ``state_file``): every broker process and this test
see the same simulated VMs through one small SQLite file. Nothing here is a real VM.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hotdesk.db.models import DesktopRow, LeaseRow, QueueEntryRow
from hotdesk.domain.names import TAG_BROKER
from hotdesk.domain.states import DesktopState as S
from hotdesk.services import claims
from hotdesk.services.context import Actor
from tests.e2e.brokers import Broker, clean_env, free_port, start_broker
from tests.support import World, make_world

GONE = (S.DELETED.value,)
IN_FLIGHT = (S.CREATING.value, S.BOOTING.value, S.DELETING.value)
SETTLED = (S.READY.value, S.ASSIGNED.value, S.CONNECTED.value, S.DISCONNECTED.value)


@pytest.fixture
def shared_world(database_url: str, tmp_path: Path) -> Iterator[World]:
    """A world whose sim platform lives in a file every broker process opens (real time)."""
    sim = {
        "state_file": str(tmp_path / "sim-platform.db"),
        "create_latency": 0.1,
        "boot_latency": 0.3,
    }
    world = make_world(database_url, sim=sim)
    yield world
    world.ctx.db.dispose()


def broker_env(world: World, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Settings of a broker process on the world's database, with short timers."""
    data = tmp_path / f"broker-{free_port()}"
    settings = dict(
        HOTDESK_DB__URL=world.ctx.db.url,
        HOTDESK_DATA_DIR=str(data),
        HOTDESK_API__HOST="127.0.0.1",
        HOTDESK_API__PORT=str(free_port()),
        HOTDESK_DEMO="false",
        HOTDESK_LOG_FORMAT="text",
        HOTDESK_RECONCILER__INTERVAL_SECONDS="1",
        HOTDESK_RECONCILER__LEASE_SECONDS="3",
        HOTDESK_RECONCILER__SWEEP_INTERVAL_SECONDS="1",
        HOTDESK_RECONCILER__CLAIM_GRACE_SECONDS="600",
        PYTHONUNBUFFERED="1",
    )
    return clean_env(**(settings | extra))


def desktops(world: World) -> list[DesktopRow]:
    with world.ctx.db.read() as session:
        return list(session.scalars(select(DesktopRow)))


def wait_until(
    what: str, predicate: Callable[[], bool], timeout: float = 60.0, world: World | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            states = Counter(d.state for d in desktops(world)) if world else {}
            pytest.fail(f"timed out after {timeout:.0f} s waiting for: {what} ({states})")
        time.sleep(0.2)


def settled(world: World, pools: dict[str, int]) -> bool:
    """No desktop in flight, nobody queued, and every pool has its warm idle desktops."""
    rows = [d for d in desktops(world) if d.state not in GONE]
    if any(d.state not in SETTLED for d in rows):
        return False
    with world.ctx.db.read() as session:
        if session.scalars(select(QueueEntryRow).limit(1)).first() is not None:
            return False
    idle = Counter(d.pool_id for d in rows if d.state == S.READY.value and d.user_id is None)
    return all(idle[pool_id] == warm for pool_id, warm in pools.items())


def pool_ids(world: World, warm_by_name: dict[str, int]) -> dict[str, int]:
    from hotdesk.services.pools import get_pool_row

    return {get_pool_row(world.ctx, world.admin, n).id: w for n, w in warm_by_name.items()}


def assert_consistent(world: World) -> None:
    """Zero double assignments, zero users with two desktops in a pool, and the platform
    holds exactly the VMs of live desktops (no leak, nothing missing)."""
    live = [d for d in desktops(world) if d.state not in (*GONE, S.FAILED.value)]
    per_user = Counter((d.pool_id, d.user_id) for d in live if d.user_id)
    assert not per_user or max(per_user.values()) == 1, "a user has two desktops in a pool"
    vms = {vm.name for vm in world.platform.all_vms() if vm.tags.get(TAG_BROKER)}
    assert vms == {d.name for d in live}, "platform and database disagree (leak or loss)"


# --- two brokers, many clients ----------------------------------------------------------


@pytest.fixture
def two_brokers(shared_world: World, tmp_path: Path) -> Iterator[list[Broker]]:
    started: list[Broker] = []
    try:
        for _ in range(2):
            started.append(start_broker(broker_env(shared_world, tmp_path)))
        yield started
    finally:
        for broker in started:
            broker.kill()


def test_two_brokers_share_reconcile_work_and_never_double_assign(
    shared_world: World, two_brokers: list[Broker]
) -> None:
    world = shared_world
    users = [world.user(f"user{i:02d}") for i in range(40)]
    warm = {f"pool{i}": 3 for i in range(4)}
    for name in warm:
        world.pool(name, warm=3, max=50, retention=600, users=users)
    ids = pool_ids(world, warm)
    wait_until("every pool warm", lambda: settled(world, ids), 60, world)
    with world.ctx.db.read() as session:
        holders = {r.holder for r in session.scalars(select(LeaseRow)) if r.name in _names(ids)}
    assert len(holders) == 2, "each broker holds its fair share of the pools"

    tokens = {u.username: world.token(u) for u in users}
    jobs = [(u.username, name, b) for u in users for name in ("pool0", "pool1") for b in (0, 1)]
    random.Random(7).shuffle(jobs)  # each user connects twice to each pool, via both brokers

    def connect(job: tuple[str, str, int]) -> tuple[str, str, str | None]:
        username, pool, which = job
        reply = httpx.post(
            f"{two_brokers[which].url}/api/v1/me/pools/{pool}/connect",
            headers={"Authorization": f"Bearer {tokens[username]}"},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        desktop = reply.json()["desktop"]
        return username, pool, desktop["id"] if desktop else None

    with ThreadPoolExecutor(max_workers=24) as executor:
        answers = list(executor.map(connect, jobs))

    wait_until("claims served and pools refilled", lambda: settled(world, ids), 90, world)
    got: dict[tuple[str, str], set[str | None]] = {}
    for username, pool, desktop_id in answers:
        got.setdefault((username, pool), set()).add(desktop_id)
    assert all(len(ids_) == 1 for ids_ in got.values()), "both brokers gave the same desktop"
    assert_consistent(world)
    creators = Counter(vm.created_by for vm in world.platform.all_vms())
    broker_pids = {b.process.pid for b in two_brokers}
    assert set(creators) == broker_pids, f"both processes created VMs: {creators}"


def _names(ids: dict[str, int]) -> set[str]:
    return {f"pool:{pool_id}" for pool_id in ids}


# --- SIGKILL during a provisioning storm --------------------------------------------------


def test_sigkill_during_a_provisioning_storm_loses_and_leaks_nothing(
    shared_world: World, tmp_path: Path
) -> None:
    world = shared_world
    users = [world.user(f"user{i:02d}") for i in range(30)]
    warm = {"lab": 6, "exam": 4}
    for name, size in warm.items():
        world.pool(name, warm=size, max=40, retention=600, users=users)
    ids = pool_ids(world, warm)
    rng = random.Random(20)
    holding: dict[tuple[str, str], str] = {}  # (user, pool) -> desktop id claimed
    env = broker_env(world, tmp_path, HOTDESK_RECONCILER__INTERVAL_SECONDS="0.5")

    killed_mid_work = 0
    for _round in range(20):
        broker = start_broker(env)
        storm_until = time.monotonic() + rng.uniform(0.2, 2.0)
        while time.monotonic() < storm_until:
            _storm_step(world, rng, users, holding)
        in_flight = [d for d in desktops(world) if d.state in IN_FLIGHT]
        broker.kill()  # SIGKILL: no clean-up of any kind
        killed_mid_work += bool(in_flight)
    assert killed_mid_work >= 10, f"only {killed_mid_work} kills hit work in flight"

    final = start_broker(env)
    try:
        wait_until(
            "recovered: pools warm, nothing in flight", lambda: settled(world, ids), 120, world
        )
        sweeps_before = _leak_free_after_two_sweeps(world)
        assert sweeps_before
        assert_consistent(world)
        for (username, pool), desktop_id in holding.items():
            mine = [d for d in desktops(world) if d.id == desktop_id]
            assert mine and mine[0].state in SETTLED, f"{username}'s desktop in {pool} lost"
            assert mine[0].user_id is not None
    finally:
        final.kill()


def _storm_step(
    world: World, rng: random.Random, users: list[Actor], holding: dict[tuple[str, str], str]
) -> None:
    """One user action, as another broker's API would do it: connect, or release."""
    user, pool = rng.choice(users), rng.choice(["lab", "exam"])
    key = (user.username, pool)
    if key in holding and rng.random() < 0.4:
        claims.release(world.ctx, user, pool)
        del holding[key]
        return
    card = claims.connect(world.ctx, user, pool)
    if card.desktop_id is not None:
        assert holding.setdefault(key, card.desktop_id) == card.desktop_id, "reconnect differs"
    time.sleep(rng.uniform(0.0, 0.05))


def _leak_free_after_two_sweeps(world: World) -> bool:
    """Wait until the broker's sweep has had two chances to see any leaked VM."""
    time.sleep(2.5)  # sweep interval 1 s: a leak is seen twice, then deleted
    ids = {d.name for d in desktops(world) if d.state not in (*GONE, S.FAILED.value)}
    wait_until(
        "leaked VMs deleted",
        lambda: {vm.name for vm in world.platform.all_vms()} <= ids,
        timeout=30,
    )
    return True
