"""Reconciler pass time and memory at scale: up to 1,000 pools and 100,000 desktops.

Not a test: it prints figures and ratios against the goals and never asserts timings.
Every VM here is SIMULATED (the ``sim`` driver, zero latency): the figures are the broker's
own cost (Python + database), not a platform's.

    .venv/bin/python bench/bench_scale.py                          # SQLite, 10k, 50k, 100k
    .venv/bin/python bench/bench_scale.py --db postgres
    .venv/bin/python bench/bench_scale.py --sizes 10000 --profile  # cProfile of one pass

What it does, for each size (in a fresh child process, so that memory figures are its own):

1. seeds ``size / --per-pool`` pools and ``size`` desktops directly with bulk inserts of the
   ORM rows, in state ``ready`` with the columns the reconciler leaves, and one running
   SIMULATED VM per desktop in the world's ``SimPlatform``. Before the sizes, a small pool
   made by the real reconciler is compared with a seeded one, column by column;
2. steady state (every pool at its warm size, nothing to do): times ``--passes`` full
   ``Reconciler(ctx).run_pass()`` calls (after one warm-up pass), counts their SQL statements,
   measures the peak RSS of the process during a pass (``VmHWM`` after resetting it) and the
   tracemalloc peak of a pass;
3. with ``--profile``: one pass under cProfile (the event loop's thread and the worker thread
   that runs the database side), top 25 by cumulative time;
4. work to do: ``--claim-percent`` of the desktops are claimed through
   ``services.claims.connect`` (spread over the pools), then one pass is timed (planning and
   starting the creates) and the time until every replacement is ready (``settle``).

Goals (docs/performance.md, "Scale-out"): a full pass <= 1 s and memory <= 500 MB at 1,000
pools / 100,000 desktops, cost growing linearly.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import cProfile
import gc
import inspect
import io
import json
import math
import os
import pstats
import re
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``tests.support`` importable
    sys.path.insert(0, str(ROOT))

from sqlalchemy import event, func, insert, select, text  # noqa: E402
from tests.support import World, make_world  # noqa: E402

from bench.bench_claims import (  # noqa: E402
    CpuMeter,
    SqliteFiles,
    SqlTracer,
    ThrowawayPostgres,
    _load,
    _short_sql,
    database_kinds,
    postgres_settings,
)
from hotdesk.db.models import (  # noqa: E402
    DesktopRow,
    EntitlementRow,
    PoolRow,
    ProviderRow,
    TemplateRow,
    UserRow,
)
from hotdesk.db.types import new_id  # noqa: E402
from hotdesk.domain.names import desktop_tags  # noqa: E402
from hotdesk.domain.pools import PoolSpec, render_name  # noqa: E402
from hotdesk.domain.states import DesktopState  # noqa: E402
from hotdesk.providers.base import InstanceStatus  # noqa: E402
from hotdesk.providers.sim.platform import SimVm  # noqa: E402
from hotdesk.reconciler.loop import Reconciler  # noqa: E402
from hotdesk.services import claims  # noqa: E402
from hotdesk.services import reconcile as rs  # noqa: E402
from hotdesk.services.context import Actor  # noqa: E402
from hotdesk.services.pools import spec_to_json  # noqa: E402

PASS_GOAL_S = 1.0
MEMORY_GOAL_MB = 500.0
GOAL_DESKTOPS = 100_000
SIMULATED = "SIMULATED VMs (sim driver, zero latency): no real VM exists"
# experiment: what an index for the provider-wide counts of plan_pool_pass would change
EXPERIMENT_INDEX = "CREATE INDEX ix_bench_desktops_provider_state ON desktops (provider_id, state)"


# --- memory ----------------------------------------------------------------------------


def _status_kib(key: str) -> int:
    """A ``/proc/self/status`` figure (VmRSS, VmHWM) in KiB; 0 where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb() -> float:
    """The resident set size of this process now, MB."""
    return _status_kib("VmRSS") / 1024


def peak_rss_mb() -> float:
    """The peak resident set size since the last ``reset_peak_rss()`` (or start), MB."""
    return _status_kib("VmHWM") / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak RSS of this process to its current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# --- seeding ---------------------------------------------------------------------------


@dataclass
class Seeded:
    """What ``seed_ready_pools`` inserted."""

    pool_ids: list[str]
    pool_names: list[str]
    desktops: int
    seconds: float
    sim_seconds: float = 0.0
    sim_mb: float = 0.0


def _catalog_ids(world: World) -> tuple[str, str, str]:
    """(provider id, template id, current revision id) of the world's provider and template."""
    with world.ctx.db.read() as session:
        provider_id = session.scalar(
            select(ProviderRow.id).where(
                ProviderRow.tenant_id == world.tenant_id, ProviderRow.name == world.provider
            )
        )
        template = session.scalar(
            select(TemplateRow).where(
                TemplateRow.tenant_id == world.tenant_id, TemplateRow.name == world.template
            )
        )
    assert provider_id is not None and template is not None and template.current_revision_id
    return provider_id, template.id, template.current_revision_id


def seed_ready_pools(
    world: World,
    names: list[str],
    *,
    per_pool: int,
    warm: int,
    max_: int,
    provision_concurrency: int = 2,
    retention_seconds: float = 3600.0,
    pools_per_batch: int = 20,
) -> Seeded:
    """Insert pools with ``per_pool`` ready idle desktops each, as the reconciler leaves them.

    Bulk ORM inserts (one INSERT ... VALUES per batch), far faster than creating 100,000
    desktops through the reconciler; the rows carry what ``add_desktop_intent``,
    ``record_created`` and ``record_boot_status`` would have written (state ``ready``,
    ``power_state`` running, the sim console, version 3). Then one running SIMULATED VM per
    desktop is put into the world's ``SimPlatform`` (``add_sim_vms``), so the platform agrees.
    """
    started = time.perf_counter()
    ctx = world.ctx
    provider_id, template_id, revision_id = _catalog_ids(world)
    now = ctx.now()
    pool_ids: list[str] = []
    for first in range(0, len(names), pools_per_batch):
        pools: list[dict[str, Any]] = []
        desktops: list[dict[str, Any]] = []
        for name in names[first : first + pools_per_batch]:
            spec = PoolSpec(
                name=name,
                provider=world.provider,
                template=world.template,
                max_desktops=max_,
                warm_desktops=warm,
                retention=timedelta(seconds=retention_seconds),
                name_pattern=f"{name}-{{SEQUENCE}}",
                provision_concurrency=provision_concurrency,
            )
            pool_id = new_id()
            pool_ids.append(pool_id)
            pools.append(
                {
                    "id": pool_id,
                    "tenant_id": world.tenant_id,
                    "name": name,
                    "provider_id": provider_id,
                    "template_id": template_id,
                    "spec": spec_to_json(spec),
                    "max_desktops": max_,
                    "warm_desktops": warm,
                    "retention_seconds": retention_seconds,
                    "next_sequence": per_pool + 1,
                    "draining": False,
                    "generation": 1,
                    "provision_failures": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            for seq in range(1, per_pool + 1):
                vm_name = render_name(spec.name_pattern, seq)
                desktops.append(
                    {
                        "id": new_id(),
                        "tenant_id": world.tenant_id,
                        "pool_id": pool_id,
                        "provider_id": provider_id,
                        "name": vm_name,
                        "display_name": vm_name,
                        "sequence": seq,
                        "state": DesktopState.READY.value,
                        "power_state": "running",
                        "template_revision_id": revision_id,
                        "platform_id": world.platform.next_platform_id(),
                        "host": "sim-host-1",
                        "console": {"protocol": "sim"},
                        "attempts": 0,
                        "agent_ready": False,
                        "created_at": now,
                        "state_since": now,
                        "version": 3,
                    }
                )
        with ctx.db.write() as session:
            session.execute(insert(PoolRow), pools)
            session.execute(insert(DesktopRow), desktops)
    seeded = Seeded(pool_ids, list(names), len(names) * per_pool, time.perf_counter() - started)
    gc.collect()
    rss0 = rss_mb()
    t = time.perf_counter()
    add_sim_vms(world, pool_ids)
    seeded.sim_seconds = time.perf_counter() - t
    seeded.sim_mb = rss_mb() - rss0
    return seeded


def add_sim_vms(world: World, pool_ids: list[str]) -> int:
    """One running SIMULATED VM per live desktop of the pools, named and tagged like the
    ``sim`` driver's (``create_desktop``) once its boot is over."""
    wanted = set(pool_ids)
    platform = world.platform
    added = 0
    with world.ctx.db.read() as session:
        rows = session.execute(
            select(DesktopRow.id, DesktopRow.pool_id, DesktopRow.name, DesktopRow.platform_id)
            .where(DesktopRow.state == DesktopState.READY.value)
            .execution_options(yield_per=10_000)
        )
        now = platform.clock()
        for desktop_id, pool_id, name, platform_id in rows:
            if pool_id not in wanted:
                continue
            platform.vms[name] = SimVm(
                name=name,
                platform_id=platform_id,
                tags=desktop_tags(
                    broker_id=world.ctx.broker_id, pool_id=pool_id, desktop_id=desktop_id
                ),
                status=InstanceStatus.RUNNING,
                ready_at=now,
                log=[f"[sim] SIMULATED desktop {name} ({name}) created"],
            )
            added += 1
    return added


def bulk_users(world: World, prefix: str, pool_ids: list[str]) -> list[tuple[Actor, str]]:
    """One new user per entry of ``pool_ids``, entitled (one user line) to that pool.

    Bulk inserts: ``save_user`` + ``set_entitlements`` one by one would take minutes for
    thousands of users. Returns (actor, pool id) pairs.
    """
    now = world.ctx.now()
    users: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    out: list[tuple[Actor, str]] = []
    for i, pool_id in enumerate(pool_ids):
        user_id = new_id()
        name = f"{prefix}{i:06d}"
        users.append(
            {
                "id": user_id,
                "tenant_id": world.tenant_id,
                "username": name,
                "role": "user",
                "disabled": False,
                "created_at": now,
            }
        )
        lines.append(
            {
                "id": new_id(),
                "pool_id": pool_id,
                "kind": "user",
                "subject_id": user_id,
                "include_suborganizations": False,
            }
        )
        out.append((Actor(world.tenant_id, user_id, name, "user"), pool_id))
    with world.ctx.db.write() as session:
        for first in range(0, len(users), 5000):
            session.execute(insert(UserRow), users[first : first + 5000])
            session.execute(insert(EntitlementRow), lines[first : first + 5000])
    return out


# columns that differ between any two desktops (ids, names, times, the platform's id)
_PER_DESKTOP = {
    "id",
    "name",
    "display_name",
    "sequence",
    "platform_id",
    "pool_id",
    "created_at",
    "state_since",
}


def check_seed_matches_reconciler(url: str) -> list[str]:
    """Differences between a desktop made by the real reconciler and a seeded one (no output
    is good): guards the bulk seeding against schema and behaviour changes in ``src/``."""
    world = make_world(url)
    world.pool("real", warm=1, max=2, retention=3600, provision_concurrency=2)
    asyncio.run(Reconciler(world.ctx).converge())
    seed_ready_pools(world, ["seeded"], per_pool=1, warm=1, max_=2)
    diffs: list[str] = []
    with world.ctx.db.read() as session:
        rows = {
            p.name: (p, session.scalar(select(DesktopRow).where(DesktopRow.pool_id == p.id)))
            for p in session.scalars(select(PoolRow))
        }
    (real_pool, real), (seeded_pool, seeded) = rows["real"], rows["seeded"]
    if real is None or seeded is None:
        return ["a pool has no desktop"]
    for column in [c.key for c in DesktopRow.__table__.columns]:
        a, b = getattr(real, column), getattr(seeded, column)
        if column not in _PER_DESKTOP and a != b:
            diffs.append(f"desktops.{column}: reconciler {a!r}, seeded {b!r}")
    for column in [c.key for c in PoolRow.__table__.columns]:
        a, b = getattr(real_pool, column), getattr(seeded_pool, column)
        if column == "spec":
            a = {k: v for k, v in a.items() if k not in ("name", "name_pattern")}
            b = {k: v for k, v in b.items() if k not in ("name", "name_pattern")}
        if column not in {"id", "name", "created_at", "updated_at"} and a != b:
            diffs.append(f"pools.{column}: reconciler {a!r}, seeded {b!r}")
    real_vm = world.platform.vms.get(real.name)
    seeded_vm = world.platform.vms.get(seeded.name)
    if real_vm is None or seeded_vm is None or real_vm.status != seeded_vm.status:
        diffs.append(f"sim VM: reconciler {real_vm}, seeded {seeded_vm}")
    world.ctx.db.dispose()
    return diffs


# --- SQL of a whole pass (every thread) ---------------------------------------------------


@dataclass
class SqlTotals:
    """Statements and their time, by statement shape, over a stretch (all threads)."""

    count: int = 0
    seconds: float = 0.0
    by_shape: dict[str, list[float]] = field(default_factory=dict)  # shape -> [count, seconds]


class SqlCounter:
    """Counts every statement on an engine while ``active``, keyed by a short shape."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.totals = SqlTotals()
        self.active = False
        self._local = threading.local()
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    @contextlib.contextmanager
    def counting(self) -> Iterator[SqlTotals]:
        """Count the statements issued inside the block."""
        self.totals = SqlTotals()
        self.active = True
        try:
            yield self.totals
        finally:
            self.active = False

    def _before(self, *_: Any) -> None:
        self._local.t = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not self.active:
            return
        spent = time.perf_counter() - getattr(self._local, "t", time.perf_counter())
        shape = _shape(statement)
        with self._lock:
            self.totals.count += 1
            self.totals.seconds += spent
            entry = self.totals.by_shape.setdefault(shape, [0, 0.0])
            entry[0] += 1
            entry[1] += spent


_CASTS = r"::(?:VARCHAR|INTEGER|BIGINT|BOOLEAN|FLOAT|NUMERIC|TEXT|JSONB?|TIMESTAMP WITH TIME ZONE)"


def _shape(statement: str) -> str:
    """A statement without casts, named parameters and literal lists, shortened
    (``%(state_1)s::VARCHAR`` -> ``?``, ``IN (?, ?)`` -> ``IN (...)``)."""
    flat = re.sub(_CASTS, "", statement)
    flat = re.sub(r"%\(\w+\)s", "?", flat)
    flat = re.sub(r"\((?:\s*(?:\?|\$\d+|__\[POSTCOMPILE_\w+\])\s*,?)+\)", "(...)", flat)
    return _short_sql(flat)


# --- measurements ----------------------------------------------------------------------


@dataclass
class SizeResult:
    """Figures of one size (written by the child as JSON)."""

    desktops: int
    pools: int
    db: str
    seed_seconds: float = 0.0
    pass_seconds: list[float] = field(default_factory=list)
    statements_per_pass: int = 0
    sql_seconds: float = 0.0
    rss_before_mb: float = 0.0
    peak_rss_mb: float = 0.0
    sim_mb: float = 0.0
    tracemalloc_peak_mb: float = 0.0
    work_claims: int = 0
    work_claim_seconds: float = 0.0
    work_pass_seconds: float = 0.0
    work_settle_seconds: float = 0.0
    work_ready_after: int = 0
    work_statements: int = 0

    @property
    def best_pass(self) -> float:
        """The fastest steady pass, seconds (the least disturbed by other processes)."""
        return min(self.pass_seconds) if self.pass_seconds else float("nan")

    @property
    def median_pass(self) -> float:
        """The median steady pass, seconds."""
        ordered = sorted(self.pass_seconds)
        return ordered[len(ordered) // 2] if ordered else float("nan")


@contextlib.contextmanager
def profiled_executor(profiles: list[cProfile.Profile]) -> Iterator[None]:
    """Run ``asyncio.to_thread`` work on one worker thread profiled by its own cProfile
    (a profiler only sees the thread that enabled it)."""
    loop = asyncio.get_running_loop()
    worker = cProfile.Profile()
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, initializer=worker.enable)
    loop.set_default_executor(executor)
    profiles.append(worker)
    try:
        yield
    finally:
        executor.submit(worker.disable).result()


def print_profile(profiles: list[cProfile.Profile], *, top: int) -> None:
    """Top ``top`` functions of the merged profiles, by cumulative and by own time."""
    stats = pstats.Stats(profiles[0])
    for extra in profiles[1:]:
        stats.add(extra)
    for key, label in (("cumulative", "cumulative"), ("tottime", "own (tottime)")):
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats(key).print_stats(top + 25)
        body = out.getvalue()
        lines = [
            ln
            for ln in body[body.find("   ncalls") :].splitlines()
            if ln.strip() and not any(waiting in ln for waiting in _WAITING)
        ]
        print(
            f"  cProfile of one steady pass, top {top} by {label} time (event-loop waits left out):"
        )
        for line in lines[: top + 1]:
            print("    " + line.replace(str(ROOT / "src") + "/", "").replace(sys.prefix, ""))


# the event loop's thread mostly waits for the worker thread: not where the time goes
_WAITING = (
    "asyncio/",
    "selectors.py",
    "select.epoll",
    "concurrent/futures/",
    "threading.py",
    "_queue.SimpleQueue",
    "{built-in method builtins.exec}",
)


def trace_one_pool(world: World, pool_id: str, lease: str | None) -> None:
    """The SQL statements of one pool's ``plan_pool_pass`` in the steady state (under this
    process's lease of the pool when the reconciler has leases)."""
    tracer = SqlTracer(world.ctx.db.engine)
    kwargs = {"lease": lease} if "lease" in inspect.signature(rs.plan_pool_pass).parameters else {}
    try:
        with tracer.trace() as op:
            t = time.perf_counter()
            rs.plan_pool_pass(world.ctx, pool_id, **kwargs)
            spent = time.perf_counter() - t
    finally:
        tracer.remove()
    print(
        f"  one pool's plan_pool_pass (steady, {spent * 1000:.1f} ms, "
        f"{len(op.statements)} statements incl. BEGIN; SQL {op.sql_seconds * 1000:.1f} ms):"
    )
    for i, stmt in enumerate(op.statements, 1):
        print(f"    {i:2d}. {_shape(stmt)}")


def measure_size(kind: str, desktops: int, args: argparse.Namespace) -> SizeResult:
    """Seed one size and measure it (runs in a child process)."""
    dbs: SqliteFiles | ThrowawayPostgres = (
        SqliteFiles() if kind == "sqlite" else ThrowawayPostgres()
    )
    per_pool = args.per_pool
    pools = max(1, desktops // per_pool)
    result = SizeResult(desktops=pools * per_pool, pools=pools, db=dbs.label)
    try:
        world = make_world(dbs.fresh_url())
        names = [f"p{i:05d}" for i in range(pools)]
        max_ = per_pool + max(1, math.ceil(per_pool * args.headroom / 100))
        seeded = seed_ready_pools(world, names, per_pool=per_pool, warm=per_pool, max_=max_)
        result.seed_seconds, result.sim_mb = seeded.seconds, seeded.sim_mb
        print(
            f"\n--- {result.desktops:,} desktops in {pools:,} pools "
            f"(warm {per_pool}, max {max_}, all ready) on {dbs.label} [{SIMULATED}]"
        )
        print(
            f"  seeded (bulk insert) in {seeded.seconds:.1f} s; {len(world.platform.vms):,} "
            f"SIMULATED running VMs in the SimPlatform in {seeded.sim_seconds:.1f} s "
            f"(+{seeded.sim_mb:.0f} MB RSS: the simulator's memory, not a broker's)"
        )
        if args.provider_state_index:
            with world.ctx.db.write() as session:
                session.execute(text(EXPERIMENT_INDEX))
            print(f"  EXPERIMENT (this database only, not in src/): {EXPERIMENT_INDEX}")
        asyncio.run(_measure_passes(world, seeded, result, args))
        world.ctx.db.dispose()
    finally:
        dbs.close()
    return result


async def _measure_passes(
    world: World, seeded: Seeded, result: SizeResult, args: argparse.Namespace
) -> None:
    reconciler = Reconciler(world.ctx)
    counter = SqlCounter(world.ctx.db.engine)
    await reconciler.run_pass()  # warm-up: statement caches, the first connections
    if args.trace_pool:
        leases = getattr(reconciler, "leases", None)
        lease = leases.token_for(seeded.pool_ids[0]) if leases is not None else None
        await asyncio.to_thread(trace_one_pool, world, seeded.pool_ids[0], lease)
    gc.collect()
    result.rss_before_mb = rss_mb()
    for i in range(args.passes):
        meter = CpuMeter()
        can_reset = reset_peak_rss()
        with counter.counting() as sql:
            t = time.perf_counter()
            await reconciler.run_pass()
            spent = time.perf_counter() - t
        result.pass_seconds.append(spent)
        if i == 0:
            result.peak_rss_mb = peak_rss_mb() if can_reset else float("nan")
            result.statements_per_pass, result.sql_seconds = sql.count, sql.seconds
        print(
            f"  steady pass {i + 1}: {spent:.2f} s "
            f"({spent / result.pools * 1000:.2f} ms per pool), "
            f"{sql.count:,} statements ({sql.count / result.pools:.1f} per pool), "
            f"{sql.seconds:.2f} s in the DB driver; {meter.report()}"
        )
    print(
        f"  memory: RSS {result.rss_before_mb:.0f} MB before the pass, peak RSS during a pass "
        f"{result.peak_rss_mb:.0f} MB (process, incl. {result.sim_mb:.0f} MB of simulator)"
    )
    shapes = sorted(counter.totals.by_shape.items(), key=lambda kv: -kv[1][1])
    print("  statements of the last pass by total time (count, ms):")
    for shape, (n, secs) in shapes[:12]:
        print(f"    {int(n):7,d} {secs * 1000:9.1f}  {shape}")

    gc.collect()
    tracemalloc.start()
    t = time.perf_counter()
    await reconciler.run_pass()
    traced = time.perf_counter() - t
    current, peak = tracemalloc.get_traced_memory()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    result.tracemalloc_peak_mb = peak / 1e6
    print(
        f"  tracemalloc over one pass ({traced:.2f} s with tracing): peak {peak / 1e6:.1f} MB "
        f"allocated during the pass, {current / 1e6:.1f} MB still held after it"
    )
    for stat in snapshot.statistics("lineno")[:5]:
        print(f"    held: {stat.size / 1e6:6.2f} MB  {str(stat.traceback).replace(str(ROOT), '')}")

    if args.profile:
        profiles: list[cProfile.Profile] = []
        main_prof = cProfile.Profile()
        profiles.append(main_prof)
        with profiled_executor(profiles):
            t = time.perf_counter()
            main_prof.enable()
            await reconciler.run_pass()
            main_prof.disable()
        print(f"  pass under cProfile: {time.perf_counter() - t:.2f} s")
        print_profile(profiles, top=args.top)
        # a fresh default executor for what follows (the profiled one is shut down)
        asyncio.get_running_loop().set_default_executor(concurrent.futures.ThreadPoolExecutor())

    if args.claim_percent > 0:
        await _work_pass(world, seeded, reconciler, counter, result, args)
    counter_remove(counter)


def counter_remove(counter: SqlCounter) -> None:
    """Stop listening to the engine."""
    event.remove(counter.engine, "before_cursor_execute", counter._before)
    event.remove(counter.engine, "after_cursor_execute", counter._after)


async def _work_pass(
    world: World,
    seeded: Seeded,
    reconciler: Reconciler,
    counter: SqlCounter,
    result: SizeResult,
    args: argparse.Namespace,
) -> None:
    """Claim ``--claim-percent`` of the desktops, then time the pass that replaces them."""
    n = max(1, round(seeded.desktops * args.claim_percent / 100))
    targets = [seeded.pool_ids[i % len(seeded.pool_ids)] for i in range(n)]
    names = dict(zip(seeded.pool_ids, seeded.pool_names, strict=True))
    users = await asyncio.to_thread(bulk_users, world, "claimer", targets)
    t = time.perf_counter()

    def claim_all() -> int:
        got = 0
        for actor, pool_id in users:
            card = claims.connect(world.ctx, actor, names[pool_id])
            got += card.desktop_id is not None
        return got

    got = await asyncio.to_thread(claim_all)
    result.work_claims = got
    result.work_claim_seconds = time.perf_counter() - t
    world.ctx.wakeups.take()
    meter = CpuMeter()
    with counter.counting() as sql:
        t = time.perf_counter()
        await reconciler.run_pass()
        result.work_pass_seconds = time.perf_counter() - t
        await reconciler.settle(timeout=600)
        result.work_settle_seconds = time.perf_counter() - t
    result.work_statements = sql.count
    with world.ctx.db.read() as session:
        result.work_ready_after = int(
            session.scalar(
                select(func.count())
                .select_from(DesktopRow)
                .where(DesktopRow.state == DesktopState.READY.value, DesktopRow.user_id.is_(None))
            )
            or 0
        )
    print(
        f"  work: {got:,}/{n:,} desktops claimed ({args.claim_percent:g}%) through "
        f"claims.connect in {result.work_claim_seconds:.1f} s; the next pass took "
        f"{result.work_pass_seconds:.2f} s (plan + start {n:,} creates), every replacement "
        f"ready {result.work_settle_seconds:.2f} s after its start; {sql.count:,} statements; "
        f"ready idle desktops now {result.work_ready_after:,}/{seeded.desktops:,}"
    )
    print(f"    machine during this run: {meter.report()}")


# --- the parent: one child per size, then the table ----------------------------------------


def run_child(kind: str, desktops: int, args: argparse.Namespace) -> SizeResult | None:
    """Measure one size in a fresh interpreter (its memory figures are its own)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        f"{kind}:{desktops}:{out}",
        "--per-pool",
        str(args.per_pool),
        "--headroom",
        str(args.headroom),
        "--passes",
        str(args.passes),
        "--claim-percent",
        str(args.claim_percent),
        "--top",
        str(args.top),
        *(["--profile"] if args.profile else []),
        *(["--trace-pool"] if args.trace_pool else []),
        *(["--provider-state-index"] if args.provider_state_index else []),
    ]
    sys.stdout.flush()
    code = subprocess.call(command)
    try:
        data = json.loads(out.read_text()) if code == 0 else None
    finally:
        out.unlink(missing_ok=True)
    if data is None:
        print(f"  ! the child for {desktops:,} desktops on {kind} failed (exit {code})")
        return None
    return SizeResult(**data)


def print_table(results: list[SizeResult]) -> None:
    """Pass time and memory per size, the cost per 10k desktops, and the goals."""
    print(f"\n=== summary ({SIMULATED}) ===")
    head = (
        f"{'db':<10} {'desktops':>9} {'pools':>6} {'pass best':>10} {'median':>8} "
        f"{'per 10k':>8} {'stmts':>8} {'RSS peak':>9} {'(sim)':>6} {'tracemalloc':>11} "
        f"{'1% claimed: pass':>17} {'settle':>7}"
    )
    print(head)
    for r in results:
        print(
            f"{r.db:<10} {r.desktops:>9,} {r.pools:>6,} {r.best_pass:>9.2f}s "
            f"{r.median_pass:>7.2f}s {r.best_pass / r.desktops * 1e4:>7.3f}s "
            f"{r.statements_per_pass:>8,} {r.peak_rss_mb:>7.0f}MB {r.sim_mb:>4.0f}MB "
            f"{r.tracemalloc_peak_mb:>9.1f}MB "
            + (
                f"{r.work_pass_seconds:>16.2f}s {r.work_settle_seconds:>6.2f}s"
                if r.work_claims
                else f"{'-':>17} {'-':>7}"
            )
        )
    for db in sorted({r.db for r in results}):
        rows = sorted((r for r in results if r.db == db), key=lambda r: r.desktops)
        if len(rows) > 1:
            base = rows[0]
            growth = ", ".join(
                f"{r.desktops:,}: x{r.best_pass / base.best_pass:.1f} time for "
                f"x{r.desktops / base.desktops:.0f} desktops"
                for r in rows[1:]
            )
            print(f"  {db} growth vs {base.desktops:,}: {growth} (linear = same factors)")
        top = rows[-1]
        scale = GOAL_DESKTOPS / top.desktops
        verdict_t = "met" if top.best_pass * scale <= PASS_GOAL_S else "NOT met"
        broker_mb = top.peak_rss_mb - top.sim_mb
        verdict_m = "met" if broker_mb <= MEMORY_GOAL_MB else "NOT met"
        extrapolated = (
            " (extrapolated linearly: a lower bound if the growth is faster)" if scale != 1 else ""
        )
        print(
            f"  {db} at {GOAL_DESKTOPS:,} desktops{extrapolated}: pass "
            f"{top.best_pass * scale:.2f} s, goal <= {PASS_GOAL_S:.0f} s: {verdict_t} "
            f"({top.best_pass * scale / PASS_GOAL_S:.1f}x the goal); peak RSS without the "
            f"simulator {broker_mb:.0f} MB (with it {top.peak_rss_mb:.0f} MB), goal <= "
            f"{MEMORY_GOAL_MB:.0f} MB: {verdict_m} ({broker_mb / MEMORY_GOAL_MB:.2f}x)"
        )


def main(argv: list[str] | None = None) -> int:
    """Parse the options; run each size in a child process; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--sizes", default="10000,50000,100000", help="desktops, comma-separated")
    parser.add_argument("--per-pool", type=int, default=100, help="desktops (= warm) per pool")
    parser.add_argument(
        "--headroom", type=float, default=20, help="max = warm + this %% (room to replace)"
    )
    parser.add_argument("--passes", type=int, default=3, help="timed steady passes per size")
    parser.add_argument(
        "--claim-percent", type=float, default=1.0, help="desktops claimed before the work pass"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one steady pass")
    parser.add_argument("--top", type=int, default=25, help="cProfile lines to print")
    parser.add_argument(
        "--trace-pool", action="store_true", help="list the SQL of one pool's plan_pool_pass"
    )
    parser.add_argument(
        "--provider-state-index",
        action="store_true",
        help="EXPERIMENT: add an index on desktops (provider_id, state) in the bench database",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        kind, size, out = args.child.split(":", 2)
        result = measure_size(kind, int(size), args)
        Path(out).write_text(json.dumps(result.__dict__))
        return 0

    print(f"hotdesk scale benchmark: reconciler pass over many pools [{SIMULATED}]")
    print(
        f"  machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; load {_load()}; "
        f"goals at {GOAL_DESKTOPS:,} desktops: pass <= {PASS_GOAL_S:.0f} s, memory <= "
        f"{MEMORY_GOAL_MB:.0f} MB, linear growth"
    )
    files = SqliteFiles()
    try:
        diffs = check_seed_matches_reconciler(files.fresh_url())
    finally:
        files.close()
    print(
        "  seeding check: a bulk-seeded desktop and pool equal ones made by the real reconciler"
        if not diffs
        else "  ! seeding check: the bulk-seeded rows differ from the reconciler's:\n    "
        + "\n    ".join(diffs)
    )
    results: list[SizeResult] = []
    started = time.perf_counter()
    for kind in database_kinds(args.db):
        if kind == "postgres":
            pg = ThrowawayPostgres()
            try:
                print(f"\n=== PostgreSQL: {postgres_settings(pg.url)}")
            finally:
                pg.close()
        for size in (int(x) for x in args.sizes.split(",") if x.strip()):
            result = run_child(kind, size, args)
            if result is not None:
                results.append(result)
    if results:
        print_table(results)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
