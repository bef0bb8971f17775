"""Claim latency and claim -> replacement-create delay, on SQLite and PostgreSQL.

Not a test: it prints figures and ratios against the goals and never asserts timings.
Every VM here is SIMULATED (the ``sim`` driver, zero latency): the figures are the broker's
own cost (Python + database), not a platform's.

    .venv/bin/python bench/bench_claims.py                      # both databases, 200 users
    .venv/bin/python bench/bench_claims.py --db sqlite --users 200
    .venv/bin/python bench/bench_claims.py --db postgres --inflight 200,20,4,1 --rounds 3
    .venv/bin/python bench/bench_claims.py --sections profile,delay

Sections per database (``--sections``):
  profile    uncontended claims timed, one under cProfile, its SQL statements listed;
  burst      ``--users`` threads released together by a barrier, one ``connect()`` each;
  sustained  users doing connect, then (disconnect, connect) x ``--rounds``, driven by N worker
             threads (N = "in flight") for each N of ``--inflight``;
  delay      claim -> replacement create call with the real ``Reconciler.run_forever``.

Experiments (bench-only monkeypatches, off by default): ``--sqlite-writer-queue`` (a FIFO queue
in front of SQLite's write lock) and ``--gc-freeze`` (``gc.freeze()`` after set-up).
Results and their reading: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import functools
import gc
import io
import math
import os
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``tests.support`` importable
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, event, func, select, text  # noqa: E402
from tests.support import (  # noqa: E402
    PostgresDatabases,
    SqliteTemplate,
    World,
    make_world,
    postgres_unavailable_reason,
)

from hotdesk.db.engine import Database  # noqa: E402
from hotdesk.db.models import DesktopRow, PoolRow  # noqa: E402
from hotdesk.reconciler.loop import Reconciler  # noqa: E402
from hotdesk.services import claims, pools  # noqa: E402
from hotdesk.services import reconcile as rs  # noqa: E402
from hotdesk.services.context import Actor  # noqa: E402
from hotdesk.services.directory import UserInput, save_user  # noqa: E402
from hotdesk.services.pools import EntitlementLine  # noqa: E402

CLAIM_GOAL_MS = 10.0
CREATE_DELAY_GOAL_MS = 100.0


# --- statistics ------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest-rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered) - 1e-9)))
    return ordered[rank - 1]


def summary(ms: list[float]) -> str:
    """p50/p90/p99/max of latencies in milliseconds."""
    return (
        f"p50 {pct(ms, 50):7.1f}  p90 {pct(ms, 90):7.1f}  p99 {pct(ms, 99):7.1f}  "
        f"max {max(ms) if ms else float('nan'):7.1f} ms"
    )


def goal(value_ms: float, goal_ms: float) -> str:
    """'met' or 'NOT met' with the ratio to the goal."""
    verdict = "met" if value_ms <= goal_ms else "NOT met"
    return f"goal <= {goal_ms:.0f} ms: {verdict} ({value_ms / goal_ms:.1f}x the goal)"


# --- SQL instrumentation ---------------------------------------------------------------


@dataclass
class OpTrace:
    """What one use-case call did on the database (filled by engine events, per thread)."""

    started: float = 0.0
    first_sql_at: float | None = None
    statements: list[str] = field(default_factory=list)
    sql_seconds: float = 0.0
    begin_seconds: float = 0.0  # SQLite: BEGIN IMMEDIATE = waiting for the write lock


class SqlTracer:
    """Counts and times SQL statements per thread with ``before/after_cursor_execute``."""

    def __init__(self, engine: Any) -> None:
        self.local = threading.local()
        self.engine = engine
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def remove(self) -> None:
        """Stop listening."""
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    @contextlib.contextmanager
    def trace(self) -> Iterator[OpTrace]:
        """Trace the statements the current thread issues inside the block."""
        op = OpTrace(started=time.perf_counter())
        self.local.op = op
        try:
            yield op
        finally:
            self.local.op = None

    def _before(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        op = getattr(self.local, "op", None)
        if op is None:
            return
        now = time.perf_counter()
        if op.first_sql_at is None:
            op.first_sql_at = now
        op.statements.append(statement)
        self.local.t = now

    def _after(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        op = getattr(self.local, "op", None)
        if op is None:
            return
        spent = time.perf_counter() - self.local.t
        if statement.startswith("BEGIN"):
            op.begin_seconds += spent
        else:
            op.sql_seconds += spent


# --- machine load ----------------------------------------------------------------------


class CpuMeter:
    """How busy the machine was over a stretch, and how much of it was this process.

    Benchmarks on a shared 2-core machine are only as good as its quietness: every section
    prints this so a reader can tell a slow figure from a busy machine.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float, float]:
        try:
            fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        except OSError:
            fields = [0.0] * 8
        idle = fields[3] + fields[4]
        steal = fields[7] if len(fields) > 7 else 0.0
        total = sum(fields[:8])
        own = os.times()
        return total, idle, steal, own.user + own.system

    def report(self) -> str:
        """'machine busy X% (this process Y%, others Z%), steal S%' since creation."""
        total0, idle0, steal0, own0 = self.start
        total1, idle1, steal1, own1 = self._sample()
        ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        span = max(total1 - total0, 1.0)
        busy = 100 * (1 - (idle1 - idle0) / span)
        own = 100 * (own1 - own0) * ticks / span
        steal = 100 * (steal1 - steal0) / span
        return (
            f"CPU of the {os.cpu_count()} cores busy {busy:.0f}% (this process {own:.0f}%, "
            f"PostgreSQL server + other processes {max(0.0, busy - own):.0f}%), "
            f"steal {steal:.0f}%"
        )


def wait_until_quiet(limit_seconds: float) -> None:
    """Wait (up to ``limit_seconds``) for a 3-second stretch with the CPUs >= 85% idle."""
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        meter = CpuMeter()
        time.sleep(3)
        total0, idle0, _, _ = meter.start
        total1, idle1, _, _ = meter._sample()
        if (idle1 - idle0) / max(total1 - total0, 1.0) >= 0.85:
            return
    print(f"  ! the machine did not become quiet within {limit_seconds:.0f} s: figures are noisy")


# --- databases -------------------------------------------------------------------------


class SqliteFiles:
    """Migrated SQLite files (WAL) in a temporary directory, one per section."""

    label = "SQLite"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hotdesk-bench-"))
        self.template = SqliteTemplate(self.dir)
        self.count = 0

    def fresh_url(self) -> str:
        """A new migrated database file."""
        self.count += 1
        target = self.dir / f"s{self.count}"
        target.mkdir()
        return self.template.fresh_url(target)

    def close(self) -> None:
        """Delete the directory."""
        shutil.rmtree(self.dir, ignore_errors=True)


class ThrowawayPostgres(PostgresDatabases):
    """One migrated database created for this run and dropped at the end."""

    label = "PostgreSQL"

    def __init__(self) -> None:
        super().__init__(prefix="hotdesk_bench")

    def close(self) -> None:
        """Drop the database."""
        self.drop()


def postgres_settings(url: str) -> str:
    """A few server settings that matter for commit latency."""
    engine = create_engine(url)
    with engine.connect() as conn:
        names = ("server_version", "fsync", "synchronous_commit", "max_connections")
        values = [f"{n}={conn.execute(text(f'SHOW {n}')).scalar()}" for n in names]
    engine.dispose()
    return ", ".join(values)


# --- experiment: a fair in-process queue in front of SQLite's write lock -----------------


class FifoLock:
    """A first-come-first-served lock: waiters are handed the lock in arrival order."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiters: collections.deque[threading.Lock] = collections.deque()
        self._owner: int | None = None

    def acquire(self) -> bool:
        """Take the lock, or queue for it; False if this thread already holds it."""
        me = threading.get_ident()
        with self._guard:
            if self._owner == me:
                return False
            if self._owner is None and not self._waiters:
                self._owner = me
                return True
            baton = threading.Lock()
            baton.acquire()
            self._waiters.append(baton)
        baton.acquire()  # released by the previous owner, which hands the lock over
        with self._guard:
            self._owner = me
        return True

    def release(self) -> None:
        """Hand the lock to the next waiter, or free it."""
        with self._guard:
            self._owner = None
            if self._waiters:
                self._owner = -1  # reserved for the woken waiter
                self._waiters.popleft().release()


def install_sqlite_writer_queue() -> None:
    """EXPERIMENT (this process only, not the product's code): writers of an SQLite database
    queue on a FIFO lock before ``BEGIN IMMEDIATE`` instead of polling SQLite's busy handler,
    which sleeps 1, 2, 5 ... 100 ms between tries and lets late arrivals overtake."""
    original = Database.write
    locks: dict[int, FifoLock] = {}

    @contextlib.contextmanager
    def write(self: Database) -> Iterator[Any]:
        if not self.is_sqlite:
            with original(self) as session:
                yield session
            return
        lock = locks.setdefault(id(self), FifoLock())
        took = lock.acquire()
        try:
            with original(self) as session:
                yield session
        finally:
            if took:
                lock.release()

    Database.write = write  # type: ignore[method-assign]


# --- world set-up ----------------------------------------------------------------------


def add_users(world: World, prefix: str, count: int) -> list[Actor]:
    """``count`` users, created in one go (faster than ``World.user`` one by one)."""
    out = []
    for i in range(count):
        name = f"{prefix}{i:04d}"
        row, _ = save_user(world.ctx, world.admin, UserInput(username=name, role="user"))
        out.append(Actor(tenant_id=world.tenant_id, user_id=row.id, username=name, role="user"))
    return out


def make_ready_pool(
    world: World, name: str, *, size: int, users: list[Actor], group: str | None = None
) -> float:
    """A pool with warm = max = ``size`` desktops, all ready (sim, zero latency); seconds."""
    started = time.perf_counter()
    world.pool(
        name,
        warm=size,
        max=size,
        retention=3600,
        users=users,
        provision_concurrency=min(size, 1000),
    )
    if group is not None:
        pools.set_entitlements(world.ctx, world.admin, name, [EntitlementLine("group", group)])
    # a fresh Reconciler per event loop: the guarded driver's asyncio.Semaphore binds to the
    # first loop that waits on it, so a DriverCache must not outlive its asyncio.run()
    asyncio.run(Reconciler(world.ctx).converge(passes=50))
    with world.ctx.db.read() as session:
        states = dict(
            session.execute(
                select(DesktopRow.state, func.count())
                .join(PoolRow, PoolRow.id == DesktopRow.pool_id)
                .where(PoolRow.name == name, PoolRow.deleted_at.is_(None))
                .group_by(DesktopRow.state)
            ).all()
        )
    if states.get("ready", 0) < size:
        print(f"  ! pool {name}: {states} after converge (wanted {size} ready)")
    return time.perf_counter() - started


def double_assignments(world: World) -> tuple[int, int]:
    """(users holding more than one desktop of a pool, desktops held) — the first must be 0."""
    with world.ctx.db.read() as session:
        dupes = session.execute(
            select(DesktopRow.pool_id, DesktopRow.user_id, func.count())
            .where(DesktopRow.user_id.is_not(None))
            .group_by(DesktopRow.pool_id, DesktopRow.user_id)
            .having(func.count() > 1)
        ).all()
        held = session.scalar(
            select(func.count()).select_from(DesktopRow).where(DesktopRow.user_id.is_not(None))
        )
    return len(dupes), int(held or 0)


# --- section 1: one claim, profiled ----------------------------------------------------


def profile_one_claim(
    world: World, tracer: SqlTracer, users: list[Actor], pool: str, *, top: int
) -> None:
    """Warm up, time a few uncontended claims, then profile one claim and list its SQL."""
    warm, timed, profiled = users[:2], users[2:-1], users[-1]
    for actor in warm:  # the first calls compile and cache SQLAlchemy statements
        claims.connect(world.ctx, actor, pool)
    plain: list[tuple[float, OpTrace]] = []
    cpu: list[float] = []
    for actor in timed:
        with tracer.trace() as op:
            t = time.perf_counter()
            c = time.thread_time()
            claims.connect(world.ctx, actor, pool)
            cpu.append((time.thread_time() - c) * 1000)
            plain.append((time.perf_counter() - t, op))
    prof = cProfile.Profile()
    with tracer.trace() as op:
        t0 = time.perf_counter()
        prof.enable()
        card = claims.connect(world.ctx, profiled, pool)
        prof.disable()
        elapsed = time.perf_counter() - t0
    t_med = statistics.median(x[0] for x in plain) * 1000
    sql_med = statistics.median(x[1].sql_seconds + x[1].begin_seconds for x in plain) * 1000
    print(
        f"  one uncontended claim (median of {len(plain)}, no profiler): {t_med:.1f} ms wall "
        f"(min {min(x[0] for x in plain) * 1000:.1f}), {statistics.median(cpu):.1f} ms CPU of "
        f"the calling thread; in the database driver {sql_med:.1f} ms ({sql_med / t_med:.0%}); "
        f"{len(plain[0][1].statements)} statements"
    )
    print(
        f"  one claim under cProfile: {elapsed * 1000:.1f} ms, outcome {card.outcome}, "
        f"{len(op.statements)} SQL statements (incl. BEGIN; COMMIT is not a cursor execute):"
    )
    for i, stmt in enumerate(op.statements, 1):
        print(f"    {i:2d}. {_short_sql(stmt)}")
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(r"hotdesk", top)
    lines = [ln for ln in out.getvalue().splitlines() if "/hotdesk/" in ln or "ncalls" in ln]
    print(f"  cProfile, hotdesk functions by cumulative time (top {top}):")
    for ln in lines[: top + 1]:
        print("    " + ln.replace(str(ROOT / "src") + "/", "").strip())
    total = stats.total_tt  # type: ignore[attr-defined]
    driver = sum(
        v[2]
        for k, v in stats.stats.items()  # type: ignore[attr-defined]
        if "sqlite3." in k[2] or "/psycopg/" in k[0] or "psycopg_binary" in k[0]
    )
    print(
        f"  cProfile total {total * 1000:.1f} ms; directly in the DB driver ~{driver * 1000:.1f}"
        f" ms; the rest is Python (SQLAlchemy ORM/Core + hotdesk), inflated by the profiler"
    )


def _short_sql(stmt: str) -> str:
    flat = " ".join(stmt.split())
    if flat.startswith("SELECT") and " FROM " in flat:
        cols, rest = flat[7:].split(" FROM ", 1)
        ncols = cols.count(",") + 1
        flat = f"SELECT <{ncols} col{'s' if ncols > 1 else ''}> FROM {rest}" if ncols > 3 else flat
    return flat[:150] + ("..." if len(flat) > 150 else "")


# --- section 2: burst ------------------------------------------------------------------


@dataclass
class Op:
    """One timed use-case call."""

    kind: str
    seconds: float
    outcome: str | None
    desktop_id: str | None
    trace: OpTrace | None = None


def run_burst(world: World, tracer: SqlTracer, users: list[Actor], pool: str) -> None:
    """All users at once: a barrier releases one thread per user, each calls connect()."""
    n = len(users)
    barrier = threading.Barrier(n + 1)
    results: list[Op | None] = [None] * n
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        barrier.wait()
        try:
            with tracer.trace() as op:
                t0 = time.perf_counter()
                card = claims.connect(world.ctx, users[i], pool)
                dt = time.perf_counter() - t0
            results[i] = Op("claim", dt, card.outcome, card.desktop_id, op)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    wall0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall0
    done = [r for r in results if r is not None]
    ms = [r.seconds * 1000 for r in done]
    ids = [r.desktop_id for r in done if r.desktop_id]
    dupes, _ = double_assignments(world)
    outcomes: dict[str, int] = {}
    for r in done:
        outcomes[str(r.outcome)] = outcomes.get(str(r.outcome), 0) + 1
    print(f"  burst: {n} threads released together, one connect() each")
    print(f"    {summary(ms)}")
    print(
        f"    throughput {len(done) / wall:.0f} claims/s (wall {wall:.2f} s); "
        f"errors {len(errors)}{' ' + repr(errors[0]) if errors else ''}"
    )
    print(
        f"    outcomes {outcomes}; distinct desktops handed out {len(set(ids))}/{len(ids)}; "
        f"users holding >1 desktop: {dupes} -> double assignments: "
        f"{'NONE' if dupes == 0 and len(set(ids)) == len(ids) else 'FOUND'}"
    )
    print(f"    p99 {goal(pct(ms, 99), CLAIM_GOAL_MS)}")
    _breakdown(done)


def _breakdown(done: list[Op]) -> None:
    """Where each call's time goes: waiting for a pooled connection, for SQLite's write lock
    (BEGIN IMMEDIATE), in SQL statements, and the rest (Python, and waiting for the GIL).

    With many threads a wait shows up where the thread was blocked: a thread back from the
    database must retake the GIL before ``after_cursor_execute`` runs, so on a busy process
    "SQL" includes GIL waits too.
    """
    kinds = sorted(
        {r.kind for r in done}, key=["claim", "connect", "reconnect", "disconnect"].index
    )
    print("    where the time goes, p50 / p99 per call (ms):")
    for kind in kinds:
        parts: dict[str, list[float]] = {"conn": [], "lock": [], "sql": [], "py": []}
        for r in done:
            op = r.trace
            if r.kind != kind or op is None or op.first_sql_at is None:
                continue
            conn = (op.first_sql_at - op.started) * 1000
            lock = op.begin_seconds * 1000
            sql = op.sql_seconds * 1000
            parts["conn"].append(conn)
            parts["lock"].append(lock)
            parts["sql"].append(sql)
            parts["py"].append(max(0.0, r.seconds * 1000 - conn - lock - sql))
        if not parts["conn"]:
            continue
        print(
            f"      {kind:<10} "
            + "  ".join(
                f"{label} {pct(parts[k], 50):.1f} / {pct(parts[k], 99):.1f}"
                for k, label in (
                    ("conn", "connection wait"),
                    ("lock", "SQLite lock wait"),
                    ("sql", "SQL"),
                    ("py", "Python+GIL"),
                )
            )
        )


# --- section 3: sustained --------------------------------------------------------------


def run_sustained(
    world: World,
    tracer: SqlTracer,
    users: list[Actor],
    pool: str,
    *,
    inflight: int,
    rounds: int,
    first_connect_done: bool = False,
) -> None:
    """``inflight`` workers share the users; each user: connect, then (disconnect, connect) x
    rounds. The first connect is a claim; later ones reconnect to the same desktop (C4).
    ``first_connect_done``: the users already claimed (the burst); only the rounds run."""
    shares = [users[i::inflight] for i in range(inflight)]
    barrier = threading.Barrier(inflight + 1)
    done: list[Op] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def timed(kind: str, call: Callable[..., claims.Card], actor: Actor, into: list[Op]) -> None:
        with tracer.trace() as op:
            t0 = time.perf_counter()
            card = call(world.ctx, actor, pool)
            dt = time.perf_counter() - t0
        if kind == "connect":
            kind = "reconnect" if card.outcome == "reconnected" else "claim"
        into.append(Op(kind, dt, card.outcome, card.desktop_id, op))

    def worker(mine: list[Actor]) -> None:
        local: list[Op] = []
        barrier.wait()
        try:
            for actor in [] if first_connect_done else mine:
                timed("connect", claims.connect, actor, local)
            for _ in range(rounds):
                for actor in mine:
                    timed("disconnect", claims.disconnect, actor, local)
                    timed("connect", claims.connect, actor, local)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        with lock:
            done.extend(local)

    threads = [threading.Thread(target=worker, args=(m,)) for m in shares]
    for t in threads:
        t.start()
    barrier.wait()
    wall0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall0
    dupes, _ = double_assignments(world)
    outcomes: dict[str, int] = {}
    for r in done:
        if r.kind != "disconnect":
            outcomes[str(r.outcome)] = outcomes.get(str(r.outcome), 0) + 1
    first = "after the burst" if first_connect_done else "connect"
    print(
        f"  sustained, {inflight} in flight ({len(users)} users, {first} + {rounds} x "
        f"(disconnect, connect)): {len(done)} calls in {wall:.2f} s = "
        f"{len(done) / wall:.0f} calls/s; errors {len(errors)}; double assignments {dupes}"
    )
    print(f"    connect outcomes {outcomes}")
    for kind in ("claim", "reconnect", "disconnect"):
        ms = [r.seconds * 1000 for r in done if r.kind == kind]
        if ms:
            print(f"    {kind:<10} n={len(ms):4d}  {summary(ms)}")
    connects = [r.seconds * 1000 for r in done if r.kind != "disconnect"]
    print(f"    connect() p99 {goal(pct(connects, 99), CLAIM_GOAL_MS)}")
    _breakdown(done)


# --- section 4: claim -> replacement create ---------------------------------------------


def run_create_delay(
    world: World,
    users: list[Actor],
    pool: str,
    *,
    claims_n: int,
    spacing: float,
    warm: int,
    max_: int,
) -> list[float]:
    """Claims one at a time while ``Reconciler.run_forever`` runs; delay to the next create.

    ``plan_pool_pass`` and the claimer's wake-up are timed (wrapped for the run only) to show
    where the delay goes.
    """
    reconciler = Reconciler(world.ctx)
    platform_ = world.platform
    samples: list[tuple[float, float]] = []  # (t0, t_returned)
    notified: list[float] = []
    plans: list[tuple[float, float]] = []
    claimer_thread: list[int] = []

    def claimer() -> None:
        claimer_thread.append(threading.get_ident())
        for actor in users[:claims_n]:
            t0 = time.perf_counter()
            claims.connect(world.ctx, actor, pool)
            samples.append((t0, time.perf_counter()))
            time.sleep(spacing)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(reconciler.run_forever(stop))
        await asyncio.sleep(0.5)  # first full pass done, pool steady
        await asyncio.to_thread(claimer)
        await asyncio.sleep(0.5)
        stop.set()
        await task

    def on_notify(orig: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        if threading.get_ident() in claimer_thread:
            notified.append(time.perf_counter())
        return orig(*a, **kw)

    def on_plan(orig: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        started = time.perf_counter()
        try:
            return orig(*a, **kw)
        finally:
            plans.append((started, time.perf_counter()))

    with _wrapped(world.ctx.wakeups, "notify", on_notify), _wrapped(rs, "plan_pool_pass", on_plan):
        asyncio.run(main())
    # each claim takes one idle desktop and the plan replaces it with exactly one create, in
    # claim order (names carry increasing sequence numbers): match claims and creates FIFO
    first = samples[0][0] if samples else 0.0
    creates = sorted(t for _, t in platform_.create_calls if t > first)
    delays = [(tc - t0) * 1000 for (t0, _), tc in zip(samples, creates, strict=False)]
    missing = len(samples) - len(delays)
    print(
        f"  claim -> replacement create (Reconciler.run_forever, warm={warm} max={max_}, "
        f"{claims_n} claims {spacing * 1000:.0f} ms apart)"
    )
    print(f"    delay  n={len(delays)}  {summary(delays)}")
    print(
        f"    claims without a replacement create: {missing} "
        f"(expected {max(0, warm + claims_n - max_)}: the pool reaches max={max_})"
    )
    if delays:
        print(
            f"    p99 {goal(pct(delays, 99), CREATE_DELAY_GOAL_MS)}; "
            f"reconciler passes {reconciler.passes}"
        )
    parts: dict[str, list[float]] = {"claim": [], "wake": [], "plan": [], "spawn": []}
    for (t0, _), t_notify, tc in zip(samples, notified, creates, strict=False):
        plan = max((p for p in plans if p[1] <= tc), default=None, key=lambda p: p[1])
        if plan is None:
            continue
        parts["claim"].append((t_notify - t0) * 1000)
        parts["wake"].append((plan[0] - t_notify) * 1000)
        parts["plan"].append((plan[1] - plan[0]) * 1000)
        parts["spawn"].append((tc - plan[1]) * 1000)
    labels = {
        "claim": "connect() until its wake-up hint (claim transaction + commit)",
        "wake": "hint -> plan_pool_pass starts (loop wake-up, to_thread; < 0: already running)",
        "plan": "plan_pool_pass (load, plan, insert the intent: one write transaction)",
        "spawn": "plan done -> sim create_desktop called (task start, DriverCache.get)",
    }
    print("    where the delay goes (ms):")
    for key, label in labels.items():
        if parts[key]:
            print(f"      {label}: p50 {pct(parts[key], 50):.1f}  p99 {pct(parts[key], 99):.1f}")
    return delays


def database_kinds(db: str) -> Iterator[str]:
    """``sqlite`` and/or ``postgres`` as ``--db`` asks; PostgreSQL skipped, with the reason,
    when no server answers."""
    for kind in ["sqlite", "postgres"] if db == "both" else [db]:
        if kind == "postgres":
            reason = postgres_unavailable_reason()
            if reason:
                print(f"\n=== PostgreSQL skipped: {reason}")
                continue
        yield kind


@contextlib.contextmanager
def _wrapped(owner: Any, name: str, hook: Callable[..., Any]) -> Iterator[None]:
    """Replace ``owner.name`` by ``hook(original, *args, **kwargs)`` for the block (timing)."""
    original = getattr(owner, name)
    setattr(owner, name, lambda *a, **kw: hook(original, *a, **kw))
    try:
        yield
    finally:
        setattr(owner, name, original)


# --- driver ----------------------------------------------------------------------------


def bench_database(kind: str, args: argparse.Namespace) -> None:
    """Every chosen section on one database."""
    dbs: SqliteFiles | ThrowawayPostgres = (
        SqliteFiles() if kind == "sqlite" else ThrowawayPostgres()
    )
    sections = set(args.sections.split(","))
    try:
        print(f"\n=== {dbs.label} ===  (load average {_load()})")
        if isinstance(dbs, ThrowawayPostgres):
            print(f"  throwaway database {dbs.name}: {postgres_settings(dbs.url)}")
        else:
            print(f"  file in {dbs.dir} (WAL, synchronous=NORMAL, BEGIN IMMEDIATE)")
        if sections & {"profile", "burst", "sustained"}:
            _claim_sections(dbs, args, sections)
        if "delay" in sections:
            world = make_world(dbs.fresh_url())
            delay_users = add_users(world, "claimer", args.claims)
            world.pool("delay", warm=args.warm, max=args.max, retention=3600, users=delay_users)
            asyncio.run(Reconciler(world.ctx).converge())
            if args.gc_freeze:
                gc.collect()
                gc.freeze()
            _section(
                args,
                lambda: run_create_delay(
                    world,
                    delay_users,
                    "delay",
                    claims_n=args.claims,
                    spacing=args.spacing,
                    warm=args.warm,
                    max_=args.max,
                ),
            )
            world.ctx.db.dispose()
        print(f"  (load average {_load()})")
    finally:
        dbs.close()


def _claim_sections(
    dbs: SqliteFiles | ThrowawayPostgres, args: argparse.Namespace, sections: set[str]
) -> None:
    """Profile, burst and sustained runs; they share one world, one fresh pool per run."""
    flights = (
        [int(x) for x in args.inflight.split(",") if x.strip()] if "sustained" in sections else []
    )
    world = make_world(dbs.fresh_url())
    t = time.perf_counter()
    users = add_users(world, "user", args.users)
    probes = add_users(world, "probe", 14)
    if args.entitle == "group":
        _entitle_by_group(world, users + probes)
    t_users = time.perf_counter() - t
    size = args.users + 20
    # the burst pool also serves the sustained run with every user in flight: the burst is
    # that run's first connect, then come the (disconnect, connect) rounds
    pool_names = ["burst"] + [f"flight{n}" for n in flights if n < args.users]
    t_conv = 0.0
    for name in pool_names:
        t_conv += make_ready_pool(
            world,
            name,
            size=size,
            users=[] if args.entitle == "group" else users + probes,
            group="everyone" if args.entitle == "group" else None,
        )
    print(
        f"  set-up: {args.users + len(probes)} users in {t_users:.1f} s, entitled by "
        f"{'one group' if args.entitle == 'group' else 'one line per user'}; "
        f"{len(pool_names)} pool(s) of {size} ready desktops (reconciler converge, sim zero "
        f"latency) in {t_conv:.1f} s = {t_conv / len(pool_names):.1f} s per pool"
    )
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
        print(f"  EXPERIMENT: gc.freeze() - {gc.get_freeze_count()} objects out of the collector")
    tracer = SqlTracer(world.ctx.db.engine)
    if "profile" in sections:
        _section(args, lambda: profile_one_claim(world, tracer, probes, "burst", top=args.top))
    if "burst" in sections or any(n >= args.users for n in flights):
        _section(args, lambda: run_burst(world, tracer, users, "burst"))
    for n in flights:
        if n >= args.users:
            _section(
                args,
                lambda: run_sustained(
                    world,
                    tracer,
                    users,
                    "burst",
                    inflight=args.users,
                    rounds=args.rounds,
                    first_connect_done=True,
                ),
            )
        else:
            # fewer users for few workers keeps the run short (>= 50 users, 250 calls)
            some = users[: min(len(users), max(50, 25 * n))]
            _section(
                args,
                functools.partial(
                    run_sustained, world, tracer, some, f"flight{n}", inflight=n, rounds=args.rounds
                ),
            )
    tracer.remove()
    world.ctx.db.dispose()


def _section(args: argparse.Namespace, run: Callable[[], Any]) -> None:
    """Run one measurement, after waiting for a quiet machine if asked; report the load."""
    if args.quiet_wait:
        wait_until_quiet(args.quiet_wait)
    meter = CpuMeter()
    run()
    print(f"    machine during this run: {meter.report()}")


def _entitle_by_group(world: World, users: list[Actor]) -> None:
    from hotdesk.services.directory import save_group

    save_group(world.ctx, world.admin, "everyone", members=[u.username for u in users])


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min) {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the chosen databases."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--sections",
        default="profile,burst,sustained,delay",
        help="comma-separated: profile,burst,sustained,delay",
    )
    parser.add_argument(
        "--inflight",
        default="200,8,1",
        help="worker counts for the sustained runs (>= --users reuses the burst)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="disconnect+connect rounds per user in the sustained runs",
    )
    parser.add_argument(
        "--entitle",
        choices=["user", "group"],
        default="user",
        help="entitle the users one line each (default) or through one group",
    )
    parser.add_argument("--claims", type=int, default=50, help="claims in the create-delay run")
    parser.add_argument("--spacing", type=float, default=0.05, help="seconds between claims")
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--max", type=int, default=50)
    parser.add_argument("--top", type=int, default=15, help="cProfile lines to print")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement wait up to SECONDS for idle CPUs",
    )
    parser.add_argument(
        "--sqlite-writer-queue",
        action="store_true",
        help="EXPERIMENT: queue SQLite writers on a FIFO lock in this process",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="EXPERIMENT: gc.freeze() after each set-up (no 90 ms gen-2 pauses)",
    )
    args = parser.parse_args(argv)
    if args.sqlite_writer_queue:
        install_sqlite_writer_queue()
        print(
            "EXPERIMENT: SQLite writers queue on an in-process FIFO lock before BEGIN "
            "IMMEDIATE (bench only; the product does not do this yet)"
        )
    print("hotdesk claim benchmark (sim driver: SIMULATED VMs, zero platform latency)")
    print(
        f"  machine: {os.cpu_count()} CPUs, {platform.machine()}, Python "
        f"{platform.python_version()}, {platform.platform()}; GIL switch interval "
        f"{sys.getswitchinterval() * 1000:.0f} ms"
    )
    print(
        f"  goals: claim p99 <= {CLAIM_GOAL_MS:.0f} ms; claim -> create <= "
        f"{CREATE_DELAY_GOAL_MS:.0f} ms"
    )
    started = time.perf_counter()
    for kind in database_kinds(args.db):
        bench_database(kind, args)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
