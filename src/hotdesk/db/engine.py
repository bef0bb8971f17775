"""Engine set-up and transaction helpers for SQLite (WAL, BEGIN IMMEDIATE) and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool


class Database:
    """A database URL turned into engines and short transactions.

    ``write()`` opens a transaction that may write: on SQLite it begins with ``BEGIN IMMEDIATE``
    so writers queue on the database lock instead of failing late; ``read()`` opens a deferred one.
    """

    def __init__(self, url: str, *, pool_size: int = 20, echo: bool = False) -> None:
        self.url = url
        self.engine = _make_engine(url, pool_size=pool_size, echo=echo)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.is_postgres = self.engine.dialect.name == "postgresql"
        write_engine = self.engine.execution_options(hotdesk_begin="IMMEDIATE")
        self._writer = sessionmaker(write_engine, expire_on_commit=False)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._local = threading.local()
        self._sqlite_writers = threading.Lock() if self.is_sqlite else None

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that may write; committed on success, rolled back on error.

        Write transactions never nest in one thread: on SQLite the inner one would wait
        forever for the lock the outer one holds, so nesting fails at once instead.
        """
        if getattr(self._local, "writing", False):
            raise RuntimeError("nested write transaction: finish the outer one first")
        self._local.writing = True
        try:
            with self._writer_turn(), self._writer() as session, session.begin():
                yield session
        finally:
            self._local.writing = False

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """On SQLite, writers of this process take turns on a lock instead of polling SQLite's
        busy handler (which sleeps up to 100 ms and lets the last committer barge in again)."""
        if self._sqlite_writers is None:
            yield
            return
        with self._sqlite_writers:
            yield

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction; loaded rows stay usable after it ends."""
        with self._reader() as session:
            yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _make_engine(url: str, *, pool_size: int, echo: bool) -> Engine:
    if url.startswith("sqlite"):
        return _make_sqlite_engine(url, echo=echo)
    return create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        future=True,
    )


def _make_sqlite_engine(url: str, *, echo: bool) -> Engine:
    path = url.split("///", 1)[1] if "///" in url else ""
    memory = path in ("", ":memory:")
    if not memory:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {
        "echo": echo,
        "connect_args": {"timeout": 30, "check_same_thread": False},
    }
    if memory:
        from sqlalchemy.pool import StaticPool

        kwargs["poolclass"] = StaticPool
    else:
        kwargs["poolclass"] = NullPool if url.endswith("?nullpool") else None
        if kwargs["poolclass"] is None:
            del kwargs["poolclass"]
            kwargs["pool_size"] = 20
            kwargs["max_overflow"] = 20
    engine = create_engine(url.removesuffix("?nullpool"), **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("hotdesk_begin", "DEFERRED")
        _begin_with_retry(conn, mode)

    return engine


def _begin_with_retry(conn: Any, mode: str) -> None:
    """BEGIN IMMEDIATE waits up to busy_timeout; retry a little beyond for heavy contention."""
    for attempt in range(50):
        try:
            conn.exec_driver_sql(f"BEGIN {mode}")
            return
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.01 * (attempt + 1))
