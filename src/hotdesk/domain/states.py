"""Desktop lifecycle states, the table of allowed transitions and the one guard."""

from __future__ import annotations

from enum import StrEnum

from hotdesk.domain.errors import InvalidTransition


class DesktopState(StrEnum):
    """Lifecycle state of one desktop (a VM of a pool)."""

    CREATING = "creating"  # intent committed; platform create pending or retrying
    BOOTING = "booting"  # platform accepted the VM; waiting until it is ready
    READY = "ready"  # running, idle, unassigned
    ASSIGNED = "assigned"  # ready and assigned to a user who has no session yet
    CONNECTED = "connected"  # the assigned user has a session
    DISCONNECTED = "disconnected"  # the session ended; the retention clock runs
    DELETING = "deleting"  # destroy requested; platform delete in progress
    DELETED = "deleted"  # gone from the platform (terminal)
    FAILED = "failed"  # creation or boot failed; kept for inspection until deleted
    LOST = "lost"  # the VM vanished from the platform behind the broker's back


S = DesktopState

ALLOWED_TRANSITIONS: dict[DesktopState, frozenset[DesktopState]] = {
    S.CREATING: frozenset({S.BOOTING, S.FAILED, S.DELETING}),
    S.BOOTING: frozenset({S.READY, S.ASSIGNED, S.FAILED, S.DELETING, S.LOST}),
    S.READY: frozenset({S.ASSIGNED, S.CONNECTED, S.DELETING, S.LOST}),
    S.ASSIGNED: frozenset({S.CONNECTED, S.DELETING, S.LOST}),
    S.CONNECTED: frozenset({S.DISCONNECTED, S.DELETING, S.LOST}),
    S.DISCONNECTED: frozenset({S.CONNECTED, S.DELETING, S.LOST}),
    S.DELETING: frozenset({S.DELETED}),
    S.FAILED: frozenset({S.DELETING}),
    S.LOST: frozenset({S.DELETING}),
    S.DELETED: frozenset(),
}

#: Being created: counts as idle toward ``warm`` when unassigned.
PROVISIONING_STATES = frozenset({S.CREATING, S.BOOTING})
#: Held by a user (or about to be).
HELD_STATES = frozenset({S.ASSIGNED, S.CONNECTED, S.DISCONNECTED})
#: The retention clock runs in these states.
RETAINED_STATES = frozenset({S.ASSIGNED, S.DISCONNECTED})
#: Gone for good; not counted anywhere.
TERMINAL_STATES = frozenset({S.DELETED})
#: Everything that still occupies a slot of the pool's ``max``.
LIVE_STATES = frozenset(set(DesktopState) - {S.DELETED})
#: The platform VM is expected to exist in these states.
ON_PLATFORM_STATES = frozenset({S.BOOTING, S.READY, S.ASSIGNED, S.CONNECTED, S.DISCONNECTED})


def can_transition(current: DesktopState, target: DesktopState) -> bool:
    """Tell whether the table allows ``current -> target``."""
    return target in ALLOWED_TRANSITIONS[current]


def transition(current: DesktopState, target: DesktopState) -> DesktopState:
    """Return ``target`` if the table allows ``current -> target``; raise otherwise.

    Every desktop state change in hotdesk goes through this guard.
    """
    if not can_transition(current, target):
        raise InvalidTransition(f"desktop cannot go from {current.value} to {target.value}")
    return target
