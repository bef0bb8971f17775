"""Login storm and refill throughput, on SQLite and PostgreSQL (SIMULATED VMs).

Not a test: it prints figures and ratios against the goals and never asserts timings.
Every VM here is SIMULATED (the ``sim`` driver): no real VM is created.

    .venv/bin/python bench/bench_storm.py                        # both parts, both databases
    .venv/bin/python bench/bench_storm.py --db sqlite --parts storm
    .venv/bin/python bench/bench_storm.py --parts refill --cases 10:100,20:100

Parts (``--parts``):

storm   ``--users`` distinct users (default 1,000) each Connect once
        (``services.claims.connect``, as the API's thread pool calls it), arrivals spread
        evenly over ``--seconds`` (default 10 s: 100/s), issued by a pool of ``--workers``
        threads (default 64) that follows the schedule; the pool has as many warm ready
        desktops as users (seeded in bulk, see bench_scale.py). Run without and with the real
        reconciler (``Reconciler.run_forever``) in the same process, as in a broker
        (``--reconciler off,on``). Goal: every user served, claim p99 <= 50 ms.
refill  a pool with warm = ``--warm`` (default 200) ready desktops, sim create latency
        ``--create-latency`` + boot latency ``--boot-latency`` (0.2 + 0.3 s); all of them are
        claimed at once, then the real reconciler refills the pool. Ideal = ceil(N / C) x
        (create + boot) with C = min(pool provision_concurrency, provider
        max_concurrent_provisioning) for each ``--cases`` pair ``C_pool:C_provider``.
        Goal: ideal / actual >= 95 %.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import functools
import gc
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``tests.support`` importable
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402
from tests.support import World, make_world  # noqa: E402

from bench.bench_claims import (  # noqa: E402
    CpuMeter,
    Op,
    SqliteFiles,
    SqlTracer,
    ThrowawayPostgres,
    _breakdown,
    _load,
    database_kinds,
    double_assignments,
    pct,
    postgres_settings,
)
from bench.bench_scale import SIMULATED, bulk_users, seed_ready_pools  # noqa: E402
from hotdesk.db.models import DesktopRow, EventRow  # noqa: E402
from hotdesk.domain.states import PROVISIONING_STATES  # noqa: E402
from hotdesk.reconciler.loop import Reconciler  # noqa: E402
from hotdesk.services import catalog, claims  # noqa: E402
from hotdesk.services import reconcile as rs  # noqa: E402
from hotdesk.services.context import Actor  # noqa: E402

STORM_P99_GOAL_MS = 50.0
REFILL_GOAL = 0.95
PROVISIONING = [s.value for s in PROVISIONING_STATES]
GUARD_MAX_CALLS = 16  # GuardedProvider's default cap on simultaneous driver calls


# --- garbage collection pauses -----------------------------------------------------------


class GcMeter:
    """Counts collections per generation and their pauses while installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append((time.perf_counter() - self._started) * 1000)

    def __enter__(self) -> GcMeter:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def report(self) -> str:
        """'gen0 n x max ms, ...'."""
        return ", ".join(
            f"gen{g} {len(p)}x (max {max(p):.1f} ms)" if p else f"gen{g} 0x"
            for g, p in self.pauses.items()
        )


@contextlib.contextmanager
def timing(owner: Any, name: str, into: list[float]) -> Iterator[None]:
    """Time every call of ``owner.name`` (positional and keyword arguments) into ``into``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - started)

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


# --- databases -------------------------------------------------------------------------


def open_databases(kind: str) -> SqliteFiles | ThrowawayPostgres:
    """A temp SQLite directory or a throwaway PostgreSQL database; says which."""
    dbs: SqliteFiles | ThrowawayPostgres = (
        SqliteFiles() if kind == "sqlite" else ThrowawayPostgres()
    )
    print(f"\n=== {dbs.label} ===  (load average {_load()})")
    if isinstance(dbs, ThrowawayPostgres):
        print(f"  throwaway database {dbs.name}: {postgres_settings(dbs.url)}")
    else:
        print(f"  file in {dbs.dir} (WAL, synchronous=NORMAL, BEGIN IMMEDIATE)")
    return dbs


def pool_with_users(
    world: World, name: str, *, desktops: int, users: int, max_: int, concurrency: int = 2
) -> tuple[str, list[Actor]]:
    """A pool of ``desktops`` ready desktops (bulk-seeded, SIMULATED VMs) and ``users`` new
    users entitled to it one line each; returns (pool id, actors)."""
    seeded = seed_ready_pools(
        world,
        [name],
        per_pool=desktops,
        warm=desktops,
        max_=max_,
        provision_concurrency=concurrency,
    )
    pool_id = seeded.pool_ids[0]
    actors = [actor for actor, _ in bulk_users(world, f"{name}-u", [pool_id] * users)]
    return pool_id, actors


async def with_reconciler(world: World, work: Callable[[], Any], *, settle: float = 0.5) -> Any:
    """Run ``work`` in a thread while ``Reconciler.run_forever`` runs in this event loop."""
    reconciler = Reconciler(world.ctx)
    stop = asyncio.Event()
    task = asyncio.create_task(reconciler.run_forever(stop))
    await asyncio.sleep(settle)  # the first full pass is done: steady state
    try:
        return await asyncio.to_thread(work)
    finally:
        stop.set()
        await task


# --- part (a): login storm ----------------------------------------------------------------


@dataclass
class Arrival:
    """One user's Connect in the storm."""

    due: float  # scheduled arrival (perf_counter)
    started: float = 0.0
    ended: float = 0.0
    outcome: str | None = None
    desktop_id: str | None = None
    error: str | None = None
    op: Op | None = None


def storm(
    world: World, pool: str, users: list[Actor], *, seconds: float, workers: int
) -> tuple[list[Arrival], float]:
    """Each user connects once at its scheduled time (evenly spread); returns the arrivals
    and the wall time from the first due time to the last answer."""
    tracer = SqlTracer(world.ctx.db.engine)
    spacing = seconds / len(users)
    t0 = time.perf_counter() + 0.2  # the workers are up before the first arrival
    arrivals = [Arrival(due=t0 + i * spacing) for i in range(len(users))]

    def one(i: int) -> None:
        a = arrivals[i]
        delay = a.due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            with tracer.trace() as trace:
                a.started = time.perf_counter()
                card = claims.connect(world.ctx, users[i], pool)
                a.ended = time.perf_counter()
            a.outcome, a.desktop_id = card.outcome, card.desktop_id
            a.op = Op("claim", a.ended - a.started, card.outcome, card.desktop_id, trace)
        except Exception as exc:  # noqa: BLE001 - counted and shown
            a.ended = time.perf_counter()
            a.error = f"{type(exc).__name__}: {exc}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool_:
        list(pool_.map(one, range(len(users))))
    tracer.remove()
    return arrivals, max(a.ended for a in arrivals) - t0


def report_storm(world: World, arrivals: list[Arrival], wall: float, label: str) -> dict[str, Any]:
    """Latency percentiles, served count and the double-assignment check."""
    done = [a for a in arrivals if a.error is None]
    ms = [(a.ended - a.started) * 1000 for a in done]
    sojourn = [(a.ended - a.due) * 1000 for a in done]
    late = [max(0.0, a.started - a.due) * 1000 for a in done]
    served = [a for a in done if a.desktop_id is not None]
    ids = [a.desktop_id for a in served]
    outcomes: dict[str, int] = {}
    for a in done:
        outcomes[str(a.outcome)] = outcomes.get(str(a.outcome), 0) + 1
    dupes, held = double_assignments(world)
    errors = [a.error for a in arrivals if a.error]
    p99 = pct(ms, 99)
    print(
        f"  {label}: {len(arrivals)} users over {wall:.1f} s "
        f"({len(arrivals) / wall:.0f} arrivals/s achieved)"
    )
    print(
        f"    claim latency  p50 {pct(ms, 50):6.1f}  p95 {pct(ms, 95):6.1f}  p99 {p99:6.1f}  "
        f"max {max(ms, default=float('nan')):6.1f} ms   (connect() call)"
    )
    print(
        f"    arrival->answer p50 {pct(sojourn, 50):6.1f}  p95 {pct(sojourn, 95):6.1f}  "
        f"p99 {pct(sojourn, 99):6.1f}  max {max(sojourn, default=float('nan')):6.1f} ms   "
        f"(incl. waiting for a free worker: start late by up to {max(late, default=0):.1f} ms)"
    )
    print(
        f"    served {len(served)}/{len(arrivals)} (each got a desktop); outcomes {outcomes}; "
        f"errors {len(errors)}{' e.g. ' + errors[0] if errors else ''}"
    )
    print(
        f"    double assignment: {len(set(ids))} distinct desktops for {len(ids)} users, "
        f"{held} held in the database, users holding >1 desktop: {dupes} -> "
        f"{'NONE' if dupes == 0 and len(set(ids)) == len(ids) else 'FOUND'}"
    )
    verdict = "met" if p99 <= STORM_P99_GOAL_MS and len(served) == len(arrivals) else "NOT met"
    print(
        f"    goal all served and p99 <= {STORM_P99_GOAL_MS:.0f} ms: {verdict} "
        f"(p99 {p99 / STORM_P99_GOAL_MS:.2f}x the goal)"
    )
    _breakdown([a.op for a in done if a.op is not None])
    return {"p50": pct(ms, 50), "p95": pct(ms, 95), "p99": p99, "max": max(ms, default=0.0)}


def run_storm_part(dbs: SqliteFiles | ThrowawayPostgres, args: argparse.Namespace) -> None:
    """The storm without and/or with the reconciler, each on a fresh pool."""
    for mode in args.reconciler.split(","):
        world = make_world(dbs.fresh_url())
        t = time.perf_counter()
        _, users = pool_with_users(
            world, "storm", desktops=args.users, users=args.users, max_=args.users
        )
        gc.collect()
        print(
            f"  set-up: pool 'storm' with {args.users} ready desktops ({SIMULATED}) and "
            f"{args.users} entitled users (one line each), bulk-seeded in "
            f"{time.perf_counter() - t:.1f} s; {args.workers} worker threads"
        )
        meter = CpuMeter()
        plans: list[float] = []
        with GcMeter() as gcm, timing(rs, "plan_pool_pass", plans):
            if mode == "on":
                arrivals, wall = asyncio.run(
                    with_reconciler(
                        world,
                        functools.partial(
                            storm, world, "storm", users, seconds=args.seconds, workers=args.workers
                        ),
                    )
                )
            else:
                arrivals, wall = storm(
                    world, "storm", users, seconds=args.seconds, workers=args.workers
                )
        label = (
            "storm, reconciler running (Reconciler.run_forever in the same process)"
            if mode == "on"
            else "storm, service layer only (no reconciler)"
        )
        report_storm(world, arrivals, wall, label)
        if plans:
            print(
                f"    reconciler: {len(plans)} plan_pool_pass calls during the storm (each claim "
                f"wakes it), p50 {pct(plans, 50) * 1000:.1f} ms, max {max(plans) * 1000:.1f} ms; "
                f"a write transaction for {sum(plans):.1f} s of the {wall:.1f} s "
                f"({sum(plans) / wall:.0%})"
            )
        print(f"    garbage collections during the storm: {gcm.report()}")
        print(f"    machine during this run: {meter.report()}")
        world.ctx.db.dispose()


# --- part (b): refill throughput -------------------------------------------------------


@dataclass
class RefillResult:
    """One refill run."""

    pool_c: int
    provider_c: int
    n: int
    actual: float = 0.0
    ideal: float = 0.0
    claim_seconds: float = 0.0
    inflight: list[int] = field(default_factory=list)


def refill(
    dbs: SqliteFiles | ThrowawayPostgres, args: argparse.Namespace, pool_c: int, provider_c: int
) -> RefillResult:
    """Claim every ready desktop of a warm-N pool at once; time the reconciler's refill."""
    n = args.warm
    sim = {"create_latency": args.create_latency, "boot_latency": args.boot_latency}
    world = make_world(dbs.fresh_url(), sim=sim)
    catalog.save_provider(
        world.ctx,
        world.admin,
        world.provider,
        kind="sim",
        config={"platform": world.platform.name, **sim},
        max_concurrent_provisioning=provider_c,
    )
    pool_id, users = pool_with_users(
        world, "refill", desktops=n, users=n, max_=2 * n, concurrency=pool_c
    )
    result = RefillResult(pool_c, provider_c, n)
    effective = min(pool_c, provider_c)
    cycle = args.create_latency + args.boot_latency
    result.ideal = math.ceil(n / effective) * cycle
    marks: dict[str, Any] = {}

    def ready_idle_and_provisioning() -> tuple[int, int]:
        with world.ctx.db.read() as session:
            rows = dict(
                session.execute(
                    select(DesktopRow.state, func.count())
                    .where(DesktopRow.pool_id == pool_id, DesktopRow.user_id.is_(None))
                    .group_by(DesktopRow.state)
                ).all()
            )
        return int(rows.get("ready", 0)), sum(int(rows.get(s, 0)) for s in PROVISIONING)

    def claim_all_then_watch() -> None:
        marks["wall0"] = world.ctx.now()
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
            cards = list(ex.map(lambda a: claims.connect(world.ctx, a, "refill"), users))
        result.claim_seconds = time.perf_counter() - t0
        marks["claimed"] = sum(c.desktop_id is not None for c in cards)
        deadline = t0 + max(60.0, 5 * result.ideal)
        while time.perf_counter() < deadline:
            ready, provisioning = ready_idle_and_provisioning()
            result.inflight.append(provisioning)
            if ready >= n:
                break
            time.sleep(0.05)
        marks["polled_end"] = time.perf_counter() - t0

    meter = CpuMeter()
    asyncio.run(with_reconciler(world, claim_all_then_watch, settle=1.0))
    timeline = _timeline(world, pool_id, marks["wall0"], n)
    result.actual = timeline.get("last_ready", float("nan"))
    ratio = result.ideal / result.actual if result.actual else float("nan")
    busy = [x for x in result.inflight if x > 0]
    print(
        f"  refill N={n}, pool provision_concurrency {pool_c}, provider "
        f"max_concurrent_provisioning {provider_c} -> C={effective}; sim create "
        f"{args.create_latency:g} s + boot {args.boot_latency:g} s (SIMULATED VMs)"
    )
    print(
        f"    first wave {timeline.get('first_wave', 0)} creates; replacements complete "
        f"{timeline.get('complete', 0)}/{n}; watched {marks['polled_end']:.1f} s"
    )
    print(
        f"    {marks['claimed']}/{n} claimed in {result.claim_seconds:.2f} s (16 threads); "
        f"pool back to {n} ready idle {result.actual:.2f} s after the first claim "
        f"(ideal ceil({n}/{effective}) x {cycle:g} s = {result.ideal:.2f} s)"
    )
    print(
        f"    throughput {n / result.actual:.1f} desktops/s (ideal {n / result.ideal:.1f}); "
        f"ideal/actual {ratio:.0%}, goal >= {REFILL_GOAL:.0%}: "
        f"{'met' if ratio >= REFILL_GOAL else 'NOT met'}"
    )
    if busy:
        print(
            f"    provisioning in flight (sampled every 50 ms while refilling): mean "
            f"{statistics.mean(busy):.1f}, max {max(busy)} of C={effective}"
            + (
                f"; note GuardedProvider allows {GUARD_MAX_CALLS} simultaneous driver calls"
                if effective > GUARD_MAX_CALLS
                else ""
            )
        )
    for key, label in (
        ("first_intent", "first claim -> first replacement intent (creating)"),
        ("create", "creating -> booting (sim create call + record_created)"),
        ("boot", "booting -> ready (sim boot + boot-watch polling + record_boot_status)"),
        ("slot_gap", "a desktop ready -> the intent that reuses its slot"),
    ):
        values = timeline.get(key)
        if isinstance(values, list) and values:
            print(
                f"    {label}: p50 {pct(values, 50) * 1000:.0f}  p90 {pct(values, 90) * 1000:.0f}"
                f"  max {max(values) * 1000:.0f} ms"
            )
        elif isinstance(values, float):
            print(f"    {label}: {values * 1000:.0f} ms")
    print(f"    machine during this run: {meter.report()}")
    world.ctx.db.dispose()
    return result


def _timeline(world: World, pool_id: str, wall0: datetime, n: int) -> dict[str, Any]:
    """Per replacement desktop: when it entered creating, booting, ready (the event log)."""
    with world.ctx.db.read() as session:
        rows = session.execute(
            select(EventRow.desktop_id, EventRow.to_state, EventRow.at)
            .join(DesktopRow, DesktopRow.id == EventRow.desktop_id)
            .where(
                EventRow.pool_id == pool_id,
                EventRow.kind == "state",
                EventRow.at >= wall0,
                DesktopRow.sequence > n,  # the replacements (the seeded ones are 1..n)
            )
        ).all()
    at: dict[str, dict[str, float]] = {}
    for desktop_id, state, when in rows:
        at.setdefault(desktop_id, {})[state] = (when - wall0).total_seconds()
    full = [d for d in at.values() if {"creating", "booting", "ready"} <= d.keys()]
    if not full:
        return {}
    intents = sorted(d["creating"] for d in full)
    readies = sorted(d["ready"] for d in full)
    # the first wave starts before any replacement is ready; after it, the k-th intent of
    # the rest takes the provisioning slot that the k-th ready desktop gave back
    first_wave = sum(1 for x in intents if x <= readies[0])
    return {
        "complete": len(full),
        "first_intent": intents[0],
        "first_wave": first_wave,
        "last_ready": readies[-1] if len(full) >= n else float("nan"),
        "create": [d["booting"] - d["creating"] for d in full],
        "boot": [d["ready"] - d["booting"] for d in full],
        "slot_gap": [
            intents[first_wave + k] - readies[k] for k in range(len(intents) - first_wave)
        ],
    }


def run_refill_part(dbs: SqliteFiles | ThrowawayPostgres, args: argparse.Namespace) -> None:
    """Every ``--cases`` pair."""
    results = []
    for case in args.cases.split(","):
        pool_c, provider_c = (int(x) for x in case.split(":"))
        results.append(refill(dbs, args, pool_c, provider_c))
    print("  refill summary: C_pool:C_provider  actual  ideal  ideal/actual  desktops/s")
    for r in results:
        print(
            f"    {r.pool_c:>4}:{r.provider_c:<4}  {r.actual:7.2f}s {r.ideal:6.2f}s "
            f"{r.ideal / r.actual:10.0%}  {r.n / r.actual:9.1f}"
        )


# --- driver ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run the chosen parts on the chosen databases."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--parts", default="storm,refill", help="comma-separated: storm,refill")
    parser.add_argument("--users", type=int, default=1000, help="storm: users (= ready desktops)")
    parser.add_argument("--seconds", type=float, default=10.0, help="storm: arrivals spread over")
    parser.add_argument("--workers", type=int, default=64, help="storm: worker threads")
    parser.add_argument(
        "--reconciler", default="off,on", help="storm: without (off) and/or with (on) it"
    )
    parser.add_argument("--warm", type=int, default=200, help="refill: N desktops to refill")
    parser.add_argument("--create-latency", type=float, default=0.2)
    parser.add_argument("--boot-latency", type=float, default=0.3)
    parser.add_argument(
        "--cases",
        default="10:100,20:100,50:20",
        help="refill: pool provision_concurrency:provider max_concurrent_provisioning pairs",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.0,
        metavar="MS",
        help="EXPERIMENT: sys.setswitchinterval(MS / 1000) (GIL hand-over; default 5 ms)",
    )
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval / 1000)
        print(f"EXPERIMENT: GIL switch interval {args.switch_interval:g} ms (Python's default: 5)")
    print(f"hotdesk storm benchmark [{SIMULATED.split(' (')[0]}: sim driver]")
    print(
        f"  every VM is SIMULATED (sim driver, no real VM); Python {sys.version.split()[0]}, "
        f"load {_load()}; goals: storm all served and p99 <= {STORM_P99_GOAL_MS:.0f} ms; "
        f"refill ideal/actual >= {REFILL_GOAL:.0%}"
    )
    started = time.perf_counter()
    for kind in database_kinds(args.db):
        dbs = open_databases(kind)
        try:
            if "storm" in parts:
                run_storm_part(dbs, args)
            if "refill" in parts:
                run_refill_part(dbs, args)
        finally:
            dbs.close()
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
