"""Guarded driver instances per provider, rebuilt when a provider's settings change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from hotdesk.db.models import ProviderRow
from hotdesk.domain.errors import NotFound
from hotdesk.providers.breaker import CircuitBreaker
from hotdesk.providers.guard import GuardedProvider
from hotdesk.providers.registry import build_provider
from hotdesk.services.context import BrokerContext


@dataclass
class _Entry:
    updated_at: datetime
    guarded: GuardedProvider


class DriverCache:
    """Builds and caches one guarded driver per provider row."""

    def __init__(self, ctx: BrokerContext, *, timeout: float = 120.0) -> None:
        self.ctx = ctx
        self.timeout = timeout
        self._entries: dict[str, _Entry] = {}

    def get(self, provider_id: str) -> GuardedProvider:
        """The guarded driver of a provider (built on first use or after a change)."""
        with self.ctx.db.read() as session:
            row = session.get(ProviderRow, provider_id)
            if row is None:
                raise NotFound("provider", provider_id)
            kind, config, updated = row.kind, dict(row.config), row.updated_at
            limit = row.max_concurrent_provisioning
        entry = self._entries.get(provider_id)
        if entry is None or entry.updated_at != updated:
            settings = self.ctx.settings
            breaker = CircuitBreaker(
                failures=settings.breaker_failures,
                cooldown=settings.breaker_cooldown_seconds,
                max_cooldown=settings.breaker_max_cooldown_seconds,
                clock=lambda: self.ctx.now().timestamp(),  # the broker's clock (fake in tests)
            )
            guarded = GuardedProvider(
                build_provider(kind, config),
                timeout=self.timeout,
                max_calls=max(16, 2 * limit),  # creates plus boot polls of as many desktops
                breaker=breaker,
            )
            self._entries[provider_id] = _Entry(updated, guarded)
            return guarded
        return entry.guarded

    def known(self) -> dict[str, GuardedProvider]:
        """Every driver built so far, by provider id."""
        return {pid: e.guarded for pid, e in self._entries.items()}

    def provider_ids(self) -> list[str]:
        """Every provider id in the database."""
        with self.ctx.db.read() as session:
            return list(session.scalars(select(ProviderRow.id)))

    async def close(self) -> None:
        """Close every driver."""
        for entry in self._entries.values():
            await entry.guarded.close()
        self._entries.clear()
