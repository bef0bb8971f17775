"""C2-C5: how a Connect is answered, decided on plain data."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ClaimOutcome(StrEnum):
    """What a Connect led to."""

    RECONNECTED = "reconnected"  # the user already holds a desktop: the same one (C4)
    ASSIGNED_READY = "assigned_ready"  # an idle ready desktop is now the user's
    ASSIGNED_PREPARING = "assigned_preparing"  # a desktop being created is now the user's (C5)
    CREATE_ON_DEMAND = "create_on_demand"  # nothing idle, room left: create one for the user
    QUEUED = "queued"  # pool full: the user waits, first come first served (C5)


@dataclass(frozen=True)
class ClaimSituation:
    """What the claim transaction sees of the pool when it decides."""

    holds_desktop: bool
    ready_idle: int
    provisioning_idle: int
    total: int
    max: int
    others_waiting: int
    draining: bool = False


def decide_claim(situation: ClaimSituation) -> ClaimOutcome:
    """Decide a Connect: reconnect, take a ready desktop, take one being built, create, or wait.

    People already waiting are served first: a newcomer never jumps the queue.
    """
    if situation.holds_desktop:
        return ClaimOutcome.RECONNECTED
    if situation.others_waiting > 0:
        return ClaimOutcome.QUEUED
    if situation.ready_idle > 0:
        return ClaimOutcome.ASSIGNED_READY
    if situation.provisioning_idle > 0:
        return ClaimOutcome.ASSIGNED_PREPARING
    if situation.total < situation.max and not situation.draining:
        return ClaimOutcome.CREATE_ON_DEMAND
    return ClaimOutcome.QUEUED


class CardState(StrEnum):
    """The card a user sees for a pool (seed 000 §3.2)."""

    UNASSIGNED = "unassigned"
    PREPARING = "preparing"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    READY = "ready"  # assigned, desktop ready, no session yet
    WAITING = "waiting"
