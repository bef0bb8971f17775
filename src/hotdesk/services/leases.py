"""Leases: several broker processes share the reconciler's work through the database (rule 4).

Every process registers itself and heartbeats. Each pool has a lease ``pool:<id>``; a process
holds at most its fair share, ``ceil(pools / live processes)``, gives back the rest and takes
free or expired leases with ``FOR UPDATE SKIP LOCKED`` (on SQLite ``BEGIN IMMEDIATE``
serialises the same steps). Singleton loops such as the leak sweep hold one named lease.

A lease's token changes only when another process takes it, so an apply checks the token it
was planned under (``lease_still_held``) and throws its result away when it no longer matches.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hotdesk.db.models import BrokerInstanceRow, LeaseRow, PoolRow
from hotdesk.db.types import new_id
from hotdesk.services.context import BrokerContext

POOL_PREFIX = "pool:"
UPKEEP = "upkeep"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Instance:
    """This broker process as other processes see it.

    ``hostname`` is the process's pid space (``pid_space()``): host name, boot id and PID
    namespace, so a dead predecessor is recognised only where its pid can be checked.
    """

    id: str
    hostname: str
    pid: int

    @classmethod
    def of_this_process(cls) -> Instance:
        """The running process's identity (host, pid and a random suffix), the same for every
        reconciler in the process: one process is one broker instance."""
        pid = os.getpid()
        if pid not in _PROCESS_INSTANCE:
            _PROCESS_INSTANCE[pid] = cls.new()
        return _PROCESS_INSTANCE[pid]

    @classmethod
    def new(cls) -> Instance:
        """A fresh identity (tests run several broker instances in one process)."""
        host = socket.gethostname()
        return cls(id=f"{host}/{os.getpid()}/{new_id()[:8]}", hostname=pid_space(), pid=os.getpid())


def pid_space() -> str:
    """Where this process's pid means something: host name, kernel boot and PID namespace.

    Two brokers with equal values can test each other's pids; containers or machines that
    merely share a host name cannot (their boot id or PID namespace differs).
    """
    return f"{socket.gethostname()}#{_read('/proc/sys/kernel/random/boot_id')[:8]}#{_pidns()}"


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def _pidns() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        return "unknown"


_PROCESS_INSTANCE: dict[int, Instance] = {}


@dataclass
class HeldLeases:
    """What one refresh left this process holding."""

    pools: dict[str, str] = field(default_factory=dict)  # pool id -> lease token
    singletons: dict[str, str] = field(default_factory=dict)
    live_instances: int = 1
    fair_share: int = 0
    taken: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)


def pool_lease(pool_id: str) -> str:
    """The lease name of a pool's reconciler work."""
    return POOL_PREFIX + pool_id


def refresh_leases(
    ctx: BrokerContext,
    me: Instance,
    *,
    busy_pools: Iterable[str] = (),
    singletons: Iterable[str] = (UPKEEP,),
) -> HeldLeases:
    """Heartbeat, renew what this process holds, give back or take pools to reach its share.

    Pools with work in flight here (``busy_pools``) are given back last.
    """
    lease_for = timedelta(seconds=ctx.settings.lease_seconds)
    with ctx.db.write() as session:
        now = ctx.now()
        live = _heartbeat(session, me, now, lease_for)
        names = _ensure_leases(session, [*singletons])
        held = HeldLeases(live_instances=live, fair_share=math.ceil(len(names) / live))
        mine = _renew_mine(session, me, names, now, lease_for)
        _rebalance(session, held, mine, names, set(busy_pools), now, lease_for, me)
        for name in singletons:
            token = _hold_singleton(session, me, name, now, lease_for)
            if token is not None:
                held.singletons[name] = token
    return held


def release_all(ctx: BrokerContext, me: Instance) -> None:
    """Give back every lease at a clean stop, so other processes take over at once."""
    with ctx.db.write() as session:
        now = ctx.now()
        session.execute(
            update(LeaseRow)
            .where(LeaseRow.holder == me.id)
            .values(holder=None, token=None, expires_at=now)
        )
        session.execute(delete(BrokerInstanceRow).where(BrokerInstanceRow.id == me.id))


def lease_still_held(session: Session, name: str, token: str | None) -> bool:
    """Inside an apply: whether the lease ``name`` still carries ``token`` (locked FOR SHARE,
    so no other process can take it before this transaction ends). ``None``: not guarded."""
    if token is None:
        return True
    current = session.scalar(
        select(LeaseRow.token).where(LeaseRow.name == name).with_for_update(read=True)
    )
    return current == token


def live_instances(ctx: BrokerContext) -> list[BrokerInstanceRow]:
    """Broker processes whose heartbeat is recent (operations, health)."""
    since = ctx.now() - timedelta(seconds=ctx.settings.lease_seconds)
    with ctx.db.read() as session:
        return list(
            session.scalars(
                select(BrokerInstanceRow)
                .where(BrokerInstanceRow.heartbeat_at > since)
                .order_by(BrokerInstanceRow.started_at)
            )
        )


def _heartbeat(session: Session, me: Instance, now: datetime, lease_for: timedelta) -> int:
    """Record this process as alive; forget dead ones. Returns how many processes are live."""
    row = session.get(BrokerInstanceRow, me.id)
    if row is None:
        row = BrokerInstanceRow(
            id=me.id, hostname=me.hostname, pid=me.pid, started_at=now, heartbeat_at=now
        )
        session.add(row)
        _reclaim_dead_local_instances(session, me, now)
    row.heartbeat_at = now
    session.flush()
    session.execute(
        delete(BrokerInstanceRow).where(BrokerInstanceRow.heartbeat_at < now - 10 * lease_for)
    )
    since = now - lease_for
    rows = session.scalars(
        select(BrokerInstanceRow.id).where(BrokerInstanceRow.heartbeat_at > since)
    ).all()
    return max(1, len(rows))


def _reclaim_dead_local_instances(session: Session, me: Instance, now: datetime) -> None:
    """A process restarted on the same host need not wait for its predecessor's leases to
    expire: an instance of this host whose process no longer exists is dead for sure."""
    others = session.scalars(
        select(BrokerInstanceRow).where(
            BrokerInstanceRow.hostname == me.hostname, BrokerInstanceRow.id != me.id
        )
    ).all()
    for other in others:
        if _process_exists(other.pid):
            continue
        session.execute(
            update(LeaseRow)
            .where(LeaseRow.holder == other.id)
            .values(holder=None, token=None, expires_at=now)
        )
        session.delete(other)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ensure_leases(session: Session, singletons: list[str]) -> list[str]:
    """A lease row for every live pool and singleton (inserted once, whoever comes first).

    Returns the pool lease names; rows of deleted pools are removed when their drain ends.
    """
    pool_ids = session.scalars(select(PoolRow.id).where(PoolRow.deleted_at.is_(None))).all()
    names = [pool_lease(pid) for pid in pool_ids]
    existing = set(session.scalars(select(LeaseRow.name)))
    missing = [n for n in [*names, *singletons] if n not in existing]
    if missing:
        rows = [{"name": n, "holder": None, "token": None, "expires_at": EPOCH} for n in missing]
        session.execute(_insert_ignoring_duplicates(session), rows)
    return names


def _insert_ignoring_duplicates(session: Session) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for lease rows another process may add too."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(LeaseRow).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(LeaseRow).on_conflict_do_nothing()
    return insert(LeaseRow)


def forget_pool_lease(session: Session, pool_id: str) -> None:
    """Remove a deleted pool's lease (in the transaction that deletes the pool)."""
    session.execute(delete(LeaseRow).where(LeaseRow.name == pool_lease(pool_id)))


def _renew_mine(
    session: Session, me: Instance, names: list[str], now: datetime, lease_for: timedelta
) -> list[LeaseRow]:
    """Extend every pool lease this process holds (one statement); return those of live
    pools."""
    mine = (LeaseRow.holder == me.id) & LeaseRow.name.startswith(POOL_PREFIX)
    session.execute(
        update(LeaseRow)
        .where(mine)
        .values(expires_at=now + lease_for)
        .execution_options(synchronize_session=False)
    )
    live = set(names)
    rows = session.scalars(select(LeaseRow).where(mine).order_by(LeaseRow.name)).all()
    return [row for row in rows if row.name in live]


def _rebalance(
    session: Session,
    held: HeldLeases,
    mine: list[LeaseRow],
    names: list[str],
    busy: set[str],
    now: datetime,
    lease_for: timedelta,
    me: Instance,
) -> None:
    extra = len(mine) - held.fair_share
    if extra > 0:
        mine.sort(key=lambda r: (r.name.removeprefix(POOL_PREFIX) in busy, r.name))
        for row in mine[:extra]:
            row.holder, row.token, row.expires_at = None, None, now
            held.released.append(row.name.removeprefix(POOL_PREFIX))
        mine = mine[extra:]
    for row in mine:
        held.pools[row.name.removeprefix(POOL_PREFIX)] = str(row.token)
    wanted = held.fair_share - len(mine)
    if wanted <= 0:
        return
    free = session.scalars(
        select(LeaseRow)
        .where(LeaseRow.name.in_(names), LeaseRow.expires_at <= now)
        .order_by(LeaseRow.expires_at, LeaseRow.name)
        .limit(wanted)
        .with_for_update(skip_locked=True)
    ).all()
    for row in free:
        _take(row, me, now, lease_for)
        pool_id = row.name.removeprefix(POOL_PREFIX)
        held.pools[pool_id] = str(row.token)
        held.taken.append(pool_id)


def _hold_singleton(
    session: Session, me: Instance, name: str, now: datetime, lease_for: timedelta
) -> str | None:
    row = session.scalar(select(LeaseRow).where(LeaseRow.name == name).with_for_update())
    if row is None:
        return None
    if row.holder == me.id:
        row.expires_at = now + lease_for
    elif row.holder is None or row.expires_at <= now:
        _take(row, me, now, lease_for)
    else:
        return None
    return row.token


def _take(row: LeaseRow, me: Instance, now: datetime, lease_for: timedelta) -> None:
    row.holder = me.id
    row.token = new_id()
    row.expires_at = now + lease_for
    row.acquired_at = now
