"""P2: pool validation with clear errors naming the field; C8 permission rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from hotdesk.domain.errors import ValidationFailed
from hotdesk.domain.pools import (
    PERMISSIONS,
    PermissionRule,
    PoolSpec,
    ProviderFacts,
    allowed_actions,
    render_name,
    validate_name,
    validate_pool_spec,
)

PROVIDERS = {
    "kvm1": ProviderFacts(
        networks=frozenset({"lan", "dmz"}),
        targets=frozenset({"host-a", "host-b"}),
        datastores=frozenset({"ssd", "hdd"}),
    ),
    "cloud": ProviderFacts(),  # declares no targets/datastores: anything goes there
}
TEMPLATES = ["win11", "ubuntu"]

GOOD = PoolSpec(
    name="lab",
    provider="kvm1",
    template="win11",
    max_desktops=10,
    warm_desktops=3,
    retention=timedelta(minutes=30),
    name_pattern="lab-{SEQUENCE}",
)


def check(spec: PoolSpec) -> PoolSpec:
    return validate_pool_spec(spec, templates=TEMPLATES, providers=PROVIDERS)


def refused(spec: PoolSpec) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        check(spec)
    return info.value


def test_good_spec_is_returned_unchanged() -> None:
    assert check(GOOD) is GOOD


def test_full_spec_passes() -> None:
    spec = replace(
        GOOD,
        target="host-a",
        network="lan",
        datastores=("ssd", "hdd"),
        display_name_pattern="Lab desktop {SEQUENCE}",
        provision_concurrency=1000,
        sequence_start=0,
        project="existing",
        permissions=(
            PermissionRule(may=("accessConsole", "restart"), role="user"),
            PermissionRule(may=PERMISSIONS, user="alice"),
        ),
    )
    assert check(spec) is spec


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"warm_desktops": 0}, "warm_desktops", "warm must be between 1 and max (10)"),
        ({"warm_desktops": 11}, "warm_desktops", "warm must be between 1 and max (10)"),
        ({"warm_desktops": -1}, "warm_desktops", "warm must be between 1 and max (10)"),
        (
            {"max_desktops": 2, "warm_desktops": 3},
            "warm_desktops",
            "warm must be between 1 and max (2)",
        ),
        ({"max_desktops": 0}, "max_desktops", "max must be between 1 and 100000"),
        ({"max_desktops": 100_001}, "max_desktops", "max must be between 1 and 100000"),
        (
            {"retention": timedelta(seconds=-1)},
            "retention",
            "retention must be zero or more (e.g. PT30M)",
        ),
        (
            {"provision_concurrency": 0},
            "provision_concurrency",
            "provisioning concurrency must be between 1 and 1000",
        ),
        (
            {"provision_concurrency": 1001},
            "provision_concurrency",
            "provisioning concurrency must be between 1 and 1000",
        ),
        ({"sequence_start": -1}, "sequence_start", "the sequence must start at 0 or more"),
    ],
)
def test_sizing(changes: dict[str, object], field: str, message: str) -> None:
    error = refused(replace(GOOD, **changes))  # type: ignore[arg-type]
    assert (error.field, error.message) == (field, message)
    assert str(error) == f"{field}: {message}"


@pytest.mark.parametrize("warm", [1, 5, 10])
def test_warm_within_bounds_is_accepted(warm: int) -> None:
    check(replace(GOOD, warm_desktops=warm))


def test_zero_retention_is_accepted() -> None:
    check(replace(GOOD, retention=timedelta(0)))


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"provider": "nope"}, "provider", "unknown provider 'nope'"),
        ({"template": "nope"}, "template", "unknown template 'nope'"),
        (
            {"network": "wan"},
            "network",
            "unknown network 'wan' on provider 'kvm1' (known: dmz, lan)",
        ),
        (
            {"provider": "cloud", "network": "wan"},
            "network",
            "unknown network 'wan' on provider 'cloud' (known: none)",
        ),
        ({"target": "host-z"}, "target", "unknown target 'host-z' on provider 'kvm1'"),
        (
            {"datastores": ("ssd", "nvme")},
            "datastores",
            "unknown datastore 'nvme' on provider 'kvm1'",
        ),
        ({"datastores": ("ssd", "ssd")}, "datastores", "a datastore is listed twice"),
        (
            {"project": "p1", "auto_create_project": True},
            "project",
            "name an existing project or ask for auto-creation, not both",
        ),
    ],
)
def test_references(changes: dict[str, object], field: str, message: str) -> None:
    error = refused(replace(GOOD, **changes))  # type: ignore[arg-type]
    assert (error.field, error.message) == (field, message)


def test_provider_without_declared_targets_accepts_any_target_and_datastore() -> None:
    check(replace(GOOD, provider="cloud", target="anything", datastores=("x", "y")))


@pytest.mark.parametrize(
    "name", ["", "Lab", "lab_1", "-lab", "lab-", "l" * 64, "lab pool", "läb", "lab.x"]
)
def test_bad_names(name: str) -> None:
    error = refused(replace(GOOD, name=name))
    assert error.field == "name"
    assert repr(name) in error.message
    assert "lowercase letters, digits and '-'" in error.message


@pytest.mark.parametrize("name", ["a", "0", "lab", "lab-2", "a" * 63, "call-centre-1"])
def test_good_names(name: str) -> None:
    assert validate_name(name) == name


def test_validate_name_reports_the_field_it_is_given() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_name("Bad", field_name="username")
    assert info.value.field == "username"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("lab", "the name pattern must contain {SEQUENCE}"),
        ("lab-{sequence}", "the name pattern must contain {SEQUENCE}"),
        ("lab {SEQUENCE}", "may use letters, digits"),
        ("lab/{SEQUENCE}", "may use letters, digits"),
        ("l" * 53 + "-{SEQUENCE}", "within 63 characters"),
        ("{POOL}-{SEQUENCE}", "the only placeholder allowed is {SEQUENCE}"),
        ("lab-{SEQUENCE}}", "the only placeholder allowed is {SEQUENCE}"),
    ],
)
def test_name_pattern_rules(pattern: str, message: str) -> None:
    error = refused(replace(GOOD, name_pattern=pattern))
    assert error.field == "name_pattern"
    assert message in error.message


@pytest.mark.parametrize(
    "pattern", ["lab-{SEQUENCE}", "{SEQUENCE}", "Lab_{SEQUENCE}.x", "l" * 52 + "-{SEQUENCE}"]
)
def test_name_pattern_accepted(pattern: str) -> None:
    check(replace(GOOD, name_pattern=pattern))


def test_longest_pattern_still_renders_valid_length_names() -> None:
    pattern = "l" * 52 + "-{SEQUENCE}"
    assert len(render_name(pattern, 10**9)) == 63


def test_render_name() -> None:
    assert render_name("lab-{SEQUENCE}", 7) == "lab-7"
    assert render_name("{SEQUENCE}-{SEQUENCE}", 3) == "3-3"


def test_display_name_pattern_length() -> None:
    error = refused(replace(GOOD, display_name_pattern="x" * 201))
    assert (error.field, error.message) == ("display_name_pattern", "at most 200 characters")
    check(replace(GOOD, display_name_pattern="x" * 200))


@pytest.mark.parametrize(
    ("rules", "field", "message"),
    [
        ((PermissionRule(may=("start",)),), "permissions[0]", "name exactly one of user or role"),
        (
            (PermissionRule(may=("start",), user="a", role="user"),),
            "permissions[0]",
            "name exactly one of user or role",
        ),
        (
            (
                PermissionRule(may=("start",), user="a"),
                PermissionRule(may=("start",), role="guest"),
            ),
            "permissions[1].role",
            "unknown role 'guest'",
        ),
        (
            (PermissionRule(may=("start", "fly"), user="a"),),
            "permissions[0].may",
            "unknown permission 'fly' (known: accessConsole, start, stop, restart, reset)",
        ),
    ],
)
def test_permission_rules(rules: tuple[PermissionRule, ...], field: str, message: str) -> None:
    error = refused(replace(GOOD, permissions=rules))
    assert (error.field, error.message) == (field, message)


def test_first_bad_field_is_reported() -> None:
    """Validation stops at the first problem, in a stable order (name, sizing, references)."""
    spec = replace(GOOD, name="Bad", warm_desktops=0, provider="nope")
    assert refused(spec).field == "name"
    assert refused(replace(spec, name="ok")).field == "warm_desktops"
    assert refused(replace(spec, name="ok", warm_desktops=1)).field == "provider"


def test_allowed_actions_union_of_user_and_role_rules() -> None:
    rules = [
        PermissionRule(may=("accessConsole",), role="user"),
        PermissionRule(may=("restart", "stop"), user="alice"),
        PermissionRule(may=("reset",), user="bob"),
    ]
    assert allowed_actions(rules, username="alice", role="user") == {
        "accessConsole",
        "restart",
        "stop",
    }
    assert allowed_actions(rules, username="carol", role="user") == {"accessConsole"}
    assert allowed_actions([], username="carol", role="user") == frozenset()
    assert allowed_actions([], username="root", role="tenant-admin") == set(PERMISSIONS)
