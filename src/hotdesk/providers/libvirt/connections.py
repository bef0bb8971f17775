"""Connections to libvirt hosts and the bounded thread pool that runs every blocking call."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any, TypeVar

from hotdesk.domain.errors import PermanentError, ProviderError, TemporaryError

T = TypeVar("T")

_lock = threading.Lock()
_module: ModuleType | None = None


def libvirt_module() -> ModuleType:
    """The ``libvirt`` binding (libvirt-python), loaded on first use with its stderr noise off."""
    global _module
    with _lock:
        if _module is None:
            try:
                import libvirt
            except ImportError as exc:
                raise PermanentError(
                    "libvirt-python is not installed (pip install 'hotdesk[libvirt]'; "
                    "see docs/libvirt.md)"
                ) from exc
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _module = libvirt
        return _module


def is_libvirt_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``libvirt.libvirtError``."""
    return _module is not None and isinstance(exc, _module.libvirtError)


def error_code(exc: BaseException) -> int | None:
    """libvirt's error code of ``exc`` (``None`` for other exceptions)."""
    if not is_libvirt_error(exc):
        return None
    code: int | None = exc.get_error_code()  # type: ignore[attr-defined]
    return code


def translate_error(exc: BaseException, what: str) -> ProviderError:
    """A typed hotdesk error for a failed libvirt call: config/XML mistakes are permanent."""
    if isinstance(exc, ProviderError):
        return exc
    lv = libvirt_module()
    code = error_code(exc)
    permanent = {
        lv.VIR_ERR_XML_ERROR,
        lv.VIR_ERR_XML_DETAIL,
        lv.VIR_ERR_CONFIG_UNSUPPORTED,
        lv.VIR_ERR_INVALID_ARG,
        lv.VIR_ERR_NO_SUPPORT,
        lv.VIR_ERR_NO_STORAGE_POOL,
        lv.VIR_ERR_NO_NETWORK,
        lv.VIR_ERR_AUTH_FAILED,
    }
    if code in permanent:
        return PermanentError(f"{what}: {exc}")
    return TemporaryError(f"{what}: {exc}", delay=5.0)


class Hosts:
    """One lazily (re)opened connection per libvirt URI, used from a bounded thread pool."""

    def __init__(self, uris: list[str], *, workers: int) -> None:
        self.uris = list(uris)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="libvirt")
        self._conns: dict[str, Any] = {}
        self._conn_lock = threading.Lock()

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run the blocking ``fn`` in the driver's thread pool, never on the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def conn(self, uri: str) -> Any:
        """The open connection to ``uri`` (blocking: call from the thread pool)."""
        lv = libvirt_module()
        with self._conn_lock:
            conn = self._conns.get(uri)
            if conn is not None:
                try:
                    if conn.isAlive():
                        return conn
                except lv.libvirtError:
                    pass
                self._conns.pop(uri, None)
            try:
                conn = lv.open(uri)
            except lv.libvirtError as exc:
                raise TemporaryError(f"cannot connect to {uri}: {exc}", delay=10.0) from exc
            if "+" in uri.split("://", 1)[0]:  # remote transport: notice dead peers
                with contextlib.suppress(lv.libvirtError):
                    conn.setKeepAlive(5, 3)
            self._conns[uri] = conn
            return conn

    def drop(self, uri: str) -> None:
        """Forget the connection to ``uri`` (it is reopened on next use)."""
        with self._conn_lock:
            conn = self._conns.pop(uri, None)
        _close_quietly(conn)

    def close_connections(self) -> None:
        """Close every connection (blocking; they are reopened on next use)."""
        with self._conn_lock:
            conns = list(self._conns.values())
            self._conns.clear()
        for conn in conns:
            _close_quietly(conn)

    def shutdown(self) -> None:
        """Stop the thread pool once running calls are done (does not wait)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _close_quietly(conn: Any) -> None:
    if conn is None:
        return
    with contextlib.suppress(Exception):
        conn.close()


def is_local_uri(uri: str) -> bool:
    """Whether ``uri`` talks to a daemon on this machine (its files are readable here)."""
    scheme, _, rest = uri.partition("://")
    return "+" not in scheme.replace("+unix", "") and not rest.split("/", 1)[0]
