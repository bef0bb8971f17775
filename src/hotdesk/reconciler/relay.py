"""Wake-up hints between broker processes.

A claim served by one process may need a create by the process holding the pool's lease.
On PostgreSQL, hints travel by ``LISTEN``/``NOTIFY`` (one sender and one listener connection
per process); on SQLite (one host), each process polls the event log for new rows written by
the others' use cases. A lost hint costs latency only: the reconciler's timer covers it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from hotdesk.db.models import EventRow
from hotdesk.services.context import BrokerContext

log = logging.getLogger("hotdesk.reconciler")
CHANNEL = "hotdesk_wakeups"
RECONCILER_ACTOR = "system:reconciler"  # its own events wake nobody: the holder wrote them


class WakeupRelay(Protocol):
    """Carries wake-up hints to and from the other broker processes."""

    def start(self) -> None:
        """Begin relaying."""

    def stop(self) -> None:
        """Stop relaying and close connections."""


def make_relay(
    ctx: BrokerContext, instance_id: str, *, peers: Callable[[], bool] = lambda: True
) -> WakeupRelay:
    """The relay suited to the database: LISTEN/NOTIFY on PostgreSQL, polling elsewhere.

    ``peers`` tells whether other broker processes are alive (polling is pointless alone).
    """
    if ctx.db.is_postgres:
        return PostgresWakeupRelay(ctx, instance_id)
    return EventPollingRelay(ctx, interval=ctx.settings.wakeup_poll_seconds, peers=peers)


class PostgresWakeupRelay:
    """``NOTIFY hotdesk_wakeups, '<instance> <pool id>'`` out, ``LISTEN`` in."""

    def __init__(self, ctx: BrokerContext, instance_id: str) -> None:
        self.ctx = ctx
        self.me = instance_id
        url = make_url(ctx.db.url).set(drivername="postgresql")
        self.conninfo = url.render_as_string(hide_password=False)
        self.listening = threading.Event()
        self.sent = 0
        self.received = 0
        self._outbox: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the sender and the listener threads."""
        self.ctx.wakeups.add_publisher(self._outbox.put)
        for target, name in ((self._send_loop, "send"), (self._listen_loop, "listen")):
            thread = threading.Thread(target=target, name=f"wakeups-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop both threads (within about half a second)."""
        self.ctx.wakeups.remove_publisher(self._outbox.put)
        self._stop.set()
        self._outbox.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def _send_loop(self) -> None:
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        while not self._stop.is_set():
            first = self._outbox.get()
            if first is None:
                break
            batch = {first, *self._drain()}
            try:
                conn = conn or psycopg.connect(self.conninfo, autocommit=True)
                for pool_id in sorted(p for p in batch if p):
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{self.me} {pool_id}"))
                    self.sent += 1
            except psycopg.Error as exc:
                log.warning("could not relay wake-ups to other brokers: %s", exc)
                _close(conn)
                conn = None
        _close(conn)

    def _drain(self) -> list[str | None]:
        items: list[str | None] = []
        while True:
            try:
                items.append(self._outbox.get_nowait())
            except queue.Empty:
                return items

    def _listen_loop(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._deliver(note.payload)
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("wake-up listener lost its connection (%s); reconnecting", exc)
                self._stop.wait(1.0)

    def _deliver(self, payload: str) -> None:
        sender, _, pool_id = payload.partition(" ")
        if sender != self.me and pool_id:
            self.received += 1
            self.ctx.wakeups.notify(pool_id, from_peer=True)


class EventPollingRelay:
    """SQLite: every ``interval`` seconds, wake the pools of events other use cases wrote."""

    def __init__(
        self, ctx: BrokerContext, *, interval: float, peers: Callable[[], bool] = lambda: True
    ) -> None:
        self.ctx = ctx
        self.interval = interval
        self.peers = peers
        self.received = 0
        self._last_id = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Remember where the event log ends; poll from there in a thread."""
        self.skip_to_end()
        self._thread = threading.Thread(target=self._loop, name="wakeups-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def poll_once(self) -> set[str]:
        """Wake the pools of events written since the last poll; return them."""
        with self.ctx.db.read() as session:
            rows = session.execute(
                select(EventRow.id, EventRow.pool_id, EventRow.actor)
                .where(EventRow.id > self._last_id)
                .order_by(EventRow.id)
                .limit(10_000)
            ).all()
        if rows:
            self._last_id = rows[-1].id
        pools = {r.pool_id for r in rows if r.pool_id and r.actor != RECONCILER_ACTOR}
        for pool_id in pools:
            self.received += 1
            self.ctx.wakeups.notify(pool_id, from_peer=True)
        return pools

    def skip_to_end(self) -> None:
        """Forget events written so far (alone, this process's own wrote them)."""
        with self.ctx.db.read() as session:
            self._last_id = int(session.scalar(select(func.max(EventRow.id))) or 0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.peers():
                    self.poll_once()
                else:
                    self.skip_to_end()
            except Exception:
                log.exception("polling for wake-ups failed; retrying")


def _close(conn: psycopg.Connection[tuple[object, ...]] | None) -> None:
    if conn is not None:
        with contextlib.suppress(psycopg.Error):
            conn.close()
