"""Deterministic platform names and tags for what the broker creates (rule 1, rule 7)."""

from __future__ import annotations

TAG_BROKER = "hotdesk-broker"
TAG_POOL = "hotdesk-pool"
TAG_DESKTOP = "hotdesk-desktop"


def desktop_tags(*, broker_id: str, pool_id: str, desktop_id: str) -> dict[str, str]:
    """The tags every VM hotdesk creates carries, so leaks can be found after a crash."""
    return {TAG_BROKER: broker_id, TAG_POOL: pool_id, TAG_DESKTOP: desktop_id}
