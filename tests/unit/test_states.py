"""The desktop lifecycle table and its one guard (rule 5)."""

from __future__ import annotations

import itertools

import pytest

from hotdesk.domain.errors import Conflict, InvalidTransition
from hotdesk.domain.states import (
    ALLOWED_TRANSITIONS,
    HELD_STATES,
    LIVE_STATES,
    ON_PLATFORM_STATES,
    PROVISIONING_STATES,
    RETAINED_STATES,
    TERMINAL_STATES,
    DesktopState,
    can_transition,
    transition,
)

S = DesktopState
ALLOWED = sorted(
    ((a, b) for a, targets in ALLOWED_TRANSITIONS.items() for b in targets),
    key=lambda pair: (pair[0].value, pair[1].value),
)
FORBIDDEN = sorted(
    (
        (a, b)
        for a, b in itertools.product(DesktopState, DesktopState)
        if b not in ALLOWED_TRANSITIONS[a]
    ),
    key=lambda pair: (pair[0].value, pair[1].value),
)

# The lifecycle as the product describes it, written out independently of the table.
EXPECTED = {
    (S.CREATING, S.BOOTING),
    (S.CREATING, S.FAILED),
    (S.CREATING, S.DELETING),
    (S.BOOTING, S.READY),
    (S.BOOTING, S.ASSIGNED),
    (S.BOOTING, S.FAILED),
    (S.BOOTING, S.DELETING),
    (S.BOOTING, S.LOST),
    (S.READY, S.ASSIGNED),
    (S.READY, S.CONNECTED),
    (S.READY, S.DELETING),
    (S.READY, S.LOST),
    (S.ASSIGNED, S.CONNECTED),
    (S.ASSIGNED, S.DELETING),
    (S.ASSIGNED, S.LOST),
    (S.CONNECTED, S.DISCONNECTED),
    (S.CONNECTED, S.DELETING),
    (S.CONNECTED, S.LOST),
    (S.DISCONNECTED, S.CONNECTED),
    (S.DISCONNECTED, S.DELETING),
    (S.DISCONNECTED, S.LOST),
    (S.DELETING, S.DELETED),
    (S.FAILED, S.DELETING),
    (S.LOST, S.DELETING),
}


def _id(pair: tuple[DesktopState, DesktopState]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


def test_table_covers_every_state() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(DesktopState)


def test_table_is_the_documented_lifecycle() -> None:
    assert set(ALLOWED) == EXPECTED


@pytest.mark.parametrize("pair", ALLOWED, ids=_id)
def test_allowed_transition_returns_target(pair: tuple[DesktopState, DesktopState]) -> None:
    current, target = pair
    assert can_transition(current, target)
    assert transition(current, target) is target


@pytest.mark.parametrize("pair", FORBIDDEN, ids=_id)
def test_forbidden_transition_raises(pair: tuple[DesktopState, DesktopState]) -> None:
    current, target = pair
    assert not can_transition(current, target)
    with pytest.raises(InvalidTransition) as info:
        transition(current, target)
    assert str(info.value) == f"desktop cannot go from {current.value} to {target.value}"


@pytest.mark.parametrize(
    "pair",
    [
        (S.DELETED, S.READY),
        (S.DELETED, S.CREATING),
        (S.DELETING, S.READY),
        (S.CONNECTED, S.READY),
        (S.DISCONNECTED, S.READY),
        (S.ASSIGNED, S.READY),
        (S.FAILED, S.READY),
        (S.LOST, S.READY),
        (S.READY, S.CREATING),
        (S.CREATING, S.READY),
        (S.READY, S.DISCONNECTED),
        (S.READY, S.READY),
    ],
    ids=_id,
)
def test_sample_of_forbidden_transitions(pair: tuple[DesktopState, DesktopState]) -> None:
    with pytest.raises(InvalidTransition):
        transition(*pair)


def test_invalid_transition_is_a_conflict() -> None:
    """The API maps Conflict to 409; a refused state change is one."""
    assert issubclass(InvalidTransition, Conflict)


def test_deleted_is_the_only_terminal_state() -> None:
    assert {S.DELETED} == TERMINAL_STATES
    assert ALLOWED_TRANSITIONS[S.DELETED] == frozenset()
    for state in set(DesktopState) - {S.DELETED}:
        assert ALLOWED_TRANSITIONS[state], f"{state} is a dead end"


def test_deleting_only_finishes() -> None:
    assert ALLOWED_TRANSITIONS[S.DELETING] == {S.DELETED}


def test_every_live_state_can_be_destroyed_directly() -> None:
    """Release, drain, Recreate and lost clean-up need deleting reachable in one step."""
    for state in LIVE_STATES - {S.DELETING}:
        assert can_transition(state, S.DELETING), state


def _reachable(start: DesktopState) -> set[DesktopState]:
    seen: set[DesktopState] = set()
    stack = [start]
    while stack:
        for nxt in ALLOWED_TRANSITIONS[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def test_every_state_reaches_deleted() -> None:
    for state in set(DesktopState) - {S.DELETED}:
        assert S.DELETED in _reachable(state), state


def test_a_used_desktop_is_never_handed_out_again() -> None:
    """Non-persistent pools: once held, a desktop never returns to ready or provisioning."""
    for held in HELD_STATES:
        back = _reachable(held) & ({S.READY} | PROVISIONING_STATES)
        assert not back, f"{held} can return to {back}"


def test_nothing_returns_to_provisioning() -> None:
    for state in DesktopState:
        assert S.CREATING not in ALLOWED_TRANSITIONS[state]


def test_state_sets() -> None:
    assert set(DesktopState) - {S.DELETED} == LIVE_STATES
    assert {S.CREATING, S.BOOTING} == PROVISIONING_STATES
    assert {S.ASSIGNED, S.CONNECTED, S.DISCONNECTED} == HELD_STATES
    assert {S.ASSIGNED, S.DISCONNECTED} == RETAINED_STATES
    assert RETAINED_STATES < HELD_STATES
    assert ON_PLATFORM_STATES <= LIVE_STATES
    assert S.CREATING not in ON_PLATFORM_STATES  # the VM may not exist yet
    assert S.DELETING not in ON_PLATFORM_STATES  # the VM may be gone already
    assert S.CONNECTED not in RETAINED_STATES  # the retention clock stops while connected
