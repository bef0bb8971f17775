"""C2-C5: how a Connect is answered, decided on plain data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotdesk.domain.claims import ClaimOutcome, ClaimSituation, decide_claim

Out = ClaimOutcome


def situation(**kw: object) -> ClaimSituation:
    base: dict[str, object] = {
        "holds_desktop": False,
        "ready_idle": 0,
        "provisioning_idle": 0,
        "total": 0,
        "max": 5,
        "others_waiting": 0,
    }
    base.update(kw)
    return ClaimSituation(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"holds_desktop": True}, Out.RECONNECTED),
        ({"holds_desktop": True, "others_waiting": 9, "total": 5}, Out.RECONNECTED),  # C4
        ({"holds_desktop": True, "draining": True}, Out.RECONNECTED),
        ({"ready_idle": 1, "provisioning_idle": 1, "total": 2}, Out.ASSIGNED_READY),
        ({"provisioning_idle": 2, "total": 2}, Out.ASSIGNED_PREPARING),
        ({"total": 4}, Out.CREATE_ON_DEMAND),  # C5: room left
        ({"total": 5}, Out.QUEUED),  # C5: pool full
        ({"total": 7}, Out.QUEUED),  # over max after a shrink: still full
        ({"ready_idle": 3, "others_waiting": 1, "total": 3}, Out.QUEUED),  # no jumping the queue
        ({"others_waiting": 1, "total": 0}, Out.QUEUED),
        ({"draining": True}, Out.QUEUED),  # nothing is created for a draining pool
        ({"draining": True, "ready_idle": 1, "total": 1}, Out.ASSIGNED_READY),
    ],
)
def test_decide_claim(kw: dict[str, object], expected: ClaimOutcome) -> None:
    assert decide_claim(situation(**kw)) is expected


situations = st.builds(
    ClaimSituation,
    holds_desktop=st.booleans(),
    ready_idle=st.integers(0, 5),
    provisioning_idle=st.integers(0, 5),
    total=st.integers(0, 12),
    max=st.integers(1, 10),
    others_waiting=st.integers(0, 5),
    draining=st.booleans(),
)


@given(situations)
def test_decision_rules(s: ClaimSituation) -> None:
    outcome = decide_claim(s)
    if s.holds_desktop:
        assert outcome is Out.RECONNECTED  # one and only one desktop (C2, C4)
        return
    assert outcome is not Out.RECONNECTED
    if s.others_waiting:
        assert outcome is Out.QUEUED  # first come, first served
    if outcome is Out.ASSIGNED_READY:
        assert s.ready_idle > 0
    if outcome is Out.ASSIGNED_PREPARING:
        assert s.ready_idle == 0 and s.provisioning_idle > 0  # ready desktops are preferred
    if outcome is Out.CREATE_ON_DEMAND:
        assert s.total < s.max and not s.draining
        assert s.ready_idle == 0 and s.provisioning_idle == 0  # never create beside idle ones
    if outcome is Out.QUEUED and not s.others_waiting:
        assert s.ready_idle == 0 and s.provisioning_idle == 0
        assert s.total >= s.max or s.draining
