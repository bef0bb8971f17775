"""Pool specifications, their validation (P1, P2) and the replenishment plan (R1, L2, T2)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hotdesk.domain.errors import ValidationFailed
from hotdesk.domain.states import (
    HELD_STATES,
    LIVE_STATES,
    PROVISIONING_STATES,
    RETAINED_STATES,
    DesktopState,
)

PERMISSIONS = ("accessConsole", "start", "stop", "restart", "reset")
ROLES = ("user", "tenant-admin")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PATTERN_CHARS = re.compile(r"^[A-Za-z0-9._{}-]+$")


@dataclass(frozen=True)
class PermissionRule:
    """C8: what a user (by name) or a role may do with desktops of a pool."""

    may: tuple[str, ...]
    user: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class PoolSpec:
    """Everything an admin says about a pool (P1)."""

    name: str
    provider: str
    template: str
    max_desktops: int
    warm_desktops: int
    retention: timedelta
    name_pattern: str = "desktop-{SEQUENCE}"
    sequence_start: int = 1
    display_name_pattern: str | None = None
    target: str | None = None
    project: str | None = None
    auto_create_project: bool = False
    network: str | None = None
    datastores: tuple[str, ...] = ()
    provision_concurrency: int = 2
    login_on_assignment: bool = False
    permissions: tuple[PermissionRule, ...] = ()


@dataclass(frozen=True)
class ProviderFacts:
    """What validation needs to know of a provider: its networks, targets and datastores."""

    networks: frozenset[str] = frozenset()
    targets: frozenset[str] = frozenset()
    datastores: frozenset[str] = frozenset()


def validate_name(value: str, *, field_name: str = "name") -> str:
    """Check an object name: lowercase letters, digits and dashes, 1-63 characters."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValidationFailed(
            field_name,
            f"{value!r} is not a valid name: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit",
        )
    return value


def validate_pool_spec(
    spec: PoolSpec,
    *,
    templates: Iterable[str],
    providers: Mapping[str, ProviderFacts],
) -> PoolSpec:
    """Validate a pool spec (P2); raise ``ValidationFailed`` naming the first bad field."""
    validate_name(spec.name)
    _validate_sizing(spec)
    _validate_references(spec, templates=set(templates), providers=providers)
    _validate_patterns(spec)
    _validate_permissions(spec.permissions)
    return spec


def _validate_sizing(spec: PoolSpec) -> None:
    if spec.max_desktops < 1 or spec.max_desktops > 100_000:
        raise ValidationFailed("max_desktops", "max must be between 1 and 100000")
    if not 1 <= spec.warm_desktops <= spec.max_desktops:
        raise ValidationFailed(
            "warm_desktops", f"warm must be between 1 and max ({spec.max_desktops})"
        )
    if spec.retention < timedelta(0):
        raise ValidationFailed("retention", "retention must be zero or more (e.g. PT30M)")
    if not 1 <= spec.provision_concurrency <= 1000:
        raise ValidationFailed(
            "provision_concurrency", "provisioning concurrency must be between 1 and 1000"
        )
    if spec.sequence_start < 0:
        raise ValidationFailed("sequence_start", "the sequence must start at 0 or more")
    if spec.sequence_start > 10**9:  # names are checked up to this; the column is 32-bit
        raise ValidationFailed("sequence_start", "the sequence must start at 10^9 or less")


def _validate_references(
    spec: PoolSpec, *, templates: set[str], providers: Mapping[str, ProviderFacts]
) -> None:
    if spec.provider not in providers:
        raise ValidationFailed("provider", f"unknown provider {spec.provider!r}")
    if spec.template not in templates:
        raise ValidationFailed("template", f"unknown template {spec.template!r}")
    facts = providers[spec.provider]
    if spec.network is not None and spec.network not in facts.networks:
        known = ", ".join(sorted(facts.networks)) or "none"
        raise ValidationFailed(
            "network",
            f"unknown network {spec.network!r} on provider {spec.provider!r} (known: {known})",
        )
    if spec.target is not None and facts.targets and spec.target not in facts.targets:
        raise ValidationFailed(
            "target", f"unknown target {spec.target!r} on provider {spec.provider!r}"
        )
    for store in spec.datastores:
        if facts.datastores and store not in facts.datastores:
            raise ValidationFailed(
                "datastores", f"unknown datastore {store!r} on provider {spec.provider!r}"
            )
    if len(set(spec.datastores)) != len(spec.datastores):
        raise ValidationFailed("datastores", "a datastore is listed twice")
    if spec.auto_create_project and spec.project:
        raise ValidationFailed(
            "project", "name an existing project or ask for auto-creation, not both"
        )


def _validate_patterns(spec: PoolSpec) -> None:
    pattern = spec.name_pattern
    if "{SEQUENCE}" not in pattern:
        raise ValidationFailed("name_pattern", "the name pattern must contain {SEQUENCE}")
    if not _PATTERN_CHARS.match(pattern) or len(render_name(pattern, 10**9)) > 63:
        raise ValidationFailed(
            "name_pattern",
            "the name pattern may use letters, digits, '.', '_', '-' and {SEQUENCE}, "
            "and a name must stay within 63 characters",
        )
    if pattern.replace("{SEQUENCE}", "").count("{") or pattern.replace("{SEQUENCE}", "").count("}"):
        raise ValidationFailed("name_pattern", "the only placeholder allowed is {SEQUENCE}")
    if spec.display_name_pattern is not None and len(spec.display_name_pattern) > 200:
        raise ValidationFailed("display_name_pattern", "at most 200 characters")


def _validate_permissions(rules: Sequence[PermissionRule]) -> None:
    for index, rule in enumerate(rules):
        where = f"permissions[{index}]"
        if (rule.user is None) == (rule.role is None):
            raise ValidationFailed(where, "name exactly one of user or role")
        if rule.role is not None and rule.role not in ROLES:
            raise ValidationFailed(f"{where}.role", f"unknown role {rule.role!r}")
        for action in rule.may:
            if action not in PERMISSIONS:
                raise ValidationFailed(
                    f"{where}.may",
                    f"unknown permission {action!r} (known: {', '.join(PERMISSIONS)})",
                )


def render_name(pattern: str, sequence: int) -> str:
    """Render a desktop name pattern such as ``lab-{SEQUENCE}``."""
    return pattern.replace("{SEQUENCE}", str(sequence))


def allowed_actions(rules: Sequence[PermissionRule], *, username: str, role: str) -> frozenset[str]:
    """C8: the union of what the rules grant this user by name and by role."""
    granted: set[str] = set()
    for rule in rules:
        if rule.user == username or rule.role == role:
            granted.update(rule.may)
    if role == "tenant-admin":
        granted.update(PERMISSIONS)
    return frozenset(granted)


# --- planning --------------------------------------------------------------------------


@dataclass(frozen=True)
class DesktopView:
    """What planning needs to know about one desktop."""

    id: str
    state: DesktopState
    user_id: str | None
    revision_id: str | None
    idle_since: datetime | None = None
    state_since: datetime | None = None
    datastore: str | None = None


@dataclass(frozen=True)
class PoolCounts:
    """Status counts of a pool (API "pool status")."""

    ready: int = 0
    provisioning: int = 0
    assigned_connected: int = 0
    assigned_disconnected: int = 0
    failed: int = 0
    deleting: int = 0
    total: int = 0
    idle: int = 0
    waiting: int = 0


@dataclass(frozen=True)
class PoolPlan:
    """What a reconcile pass should do to a pool right now."""

    expire: tuple[str, ...] = ()
    remove_failed: tuple[str, ...] = ()
    drain: tuple[str, ...] = ()
    retire: tuple[str, ...] = ()
    create: int = 0
    counts: PoolCounts = field(default_factory=PoolCounts)


@dataclass(frozen=True)
class PlanInput:
    """Sizing and policy that planning reads from a pool."""

    warm: int
    max: int
    retention: timedelta
    concurrency: int
    draining: bool = False
    provisioning_paused: bool = False
    failed_keep: timedelta = timedelta(minutes=10)
    claim_grace: timedelta = timedelta(0)
    provider_budget: int | None = None
    datastores: tuple[str, ...] = ()


def retention_deadline(
    view: DesktopView, retention: timedelta, *, claim_grace: timedelta = timedelta(0)
) -> datetime | None:
    """When a retained desktop is due for destruction (L1, L4); ``None`` if not retained.

    A desktop handed to a user who has not connected yet (``assigned``) is kept at least
    ``claim_grace``, so a user served from the queue has time to connect.
    """
    if view.state not in RETAINED_STATES or view.idle_since is None:
        return None
    if view.state is DesktopState.ASSIGNED:
        return view.idle_since + max(retention, claim_grace)
    return view.idle_since + retention


def count_desktops(desktops: Iterable[DesktopView], *, waiting: int = 0) -> PoolCounts:
    """Count desktops by what the pool status shows."""
    return count_state_groups(((d.state, d.user_id is None, 1) for d in desktops), waiting=waiting)


def count_state_groups(
    groups: Iterable[tuple[DesktopState, bool, int]], *, waiting: int = 0
) -> PoolCounts:
    """Count desktops given as (state, unassigned, how many) groups."""
    ready = provisioning = connected = disconnected = failed = deleting = total = idle = 0
    for state, unassigned, n in groups:
        if state not in LIVE_STATES:
            continue
        total += n
        if state is DesktopState.READY:
            ready += n
            idle += n
        elif state in PROVISIONING_STATES:
            provisioning += n
            idle += n if unassigned else 0
        elif state is DesktopState.CONNECTED:
            connected += n
        elif state in RETAINED_STATES:
            disconnected += n
        elif state is DesktopState.FAILED:
            failed += n
        elif state is DesktopState.DELETING:
            deleting += n
    return PoolCounts(
        ready=ready,
        provisioning=provisioning,
        assigned_connected=connected,
        assigned_disconnected=disconnected,
        failed=failed,
        deleting=deleting,
        total=total,
        idle=idle,
        waiting=waiting,
    )


def plan_pool(
    sizing: PlanInput, desktops: Sequence[DesktopView], *, now: datetime, waiting: int = 0
) -> PoolPlan:
    """Decide what to destroy and how many desktops to create (R1, L2, P4).

    Idle = ready + being created (unassigned), so the plan never overshoots; the total of
    live desktops never exceeds ``max``; at most ``concurrency`` are provisioning at once.
    """
    expire = tuple(
        d.id
        for d in desktops
        if (deadline := retention_deadline(d, sizing.retention, claim_grace=sizing.claim_grace))
        is not None
        and deadline <= now
    )
    remove_failed = tuple(
        d.id
        for d in desktops
        if d.state is DesktopState.FAILED
        and (
            sizing.draining
            or (d.state_since is not None and d.state_since + sizing.failed_keep <= now)
        )
    )
    drain: tuple[str, ...] = ()
    if sizing.draining:
        drain = tuple(
            d.id
            for d in desktops
            if d.user_id is None and d.state in (PROVISIONING_STATES | {DesktopState.READY})
        )
    counts = count_desktops(desktops, waiting=waiting)
    retire = () if sizing.draining else off_datastore_idle(sizing, desktops, counts)
    create = 0
    if not sizing.draining and not sizing.provisioning_paused:
        create = desktops_to_create(sizing, counts)
    return PoolPlan(
        expire=expire,
        remove_failed=remove_failed,
        drain=drain,
        retire=retire,
        create=create,
        counts=counts,
    )


def off_datastore_idle(
    sizing: PlanInput, desktops: Sequence[DesktopView], counts: PoolCounts
) -> tuple[str, ...]:
    """T4: ready idle desktops on a datastore the pool no longer lists, to replace first.

    A few per pass (the free provisioning slots), so replacements keep up and idle stays near
    ``warm`` while the pool moves to its remaining datastores.
    """
    if not sizing.datastores:
        return ()
    stranded = [
        d.id
        for d in desktops
        if d.state is DesktopState.READY
        and d.user_id is None
        and d.datastore is not None
        and d.datastore not in sizing.datastores
    ]
    slots = max(0, sizing.concurrency - counts.provisioning)
    return tuple(stranded[:slots])


def desktops_to_create(sizing: PlanInput, counts: PoolCounts) -> int:
    """How many new idle desktops to start now (R1, with the concurrency limits)."""
    deficit = sizing.warm - counts.idle
    room = sizing.max - counts.total
    slots = sizing.concurrency - counts.provisioning
    wanted = min(deficit, room, slots)
    if sizing.provider_budget is not None:
        wanted = min(wanted, sizing.provider_budget)
    return max(0, wanted)


def is_stale_revision(view: DesktopView, current_revision: str | None) -> bool:
    """T2: an idle desktop (ready or being created, unassigned) not on the current revision."""
    idle = view.user_id is None and view.state in (PROVISIONING_STATES | {DesktopState.READY})
    return idle and current_revision is not None and view.revision_id != current_revision


def recreate_targets(desktops: Sequence[DesktopView], current_revision: str | None) -> list[str]:
    """T2 Recreate: failed desktops and idle desktops not on the current revision.

    Assigned desktops are never touched.
    """
    return [
        d.id
        for d in desktops
        if d.user_id is None
        and (d.state is DesktopState.FAILED or is_stale_revision(d, current_revision))
    ]


def least_loaded_datastore(
    datastores: Sequence[str], desktops: Iterable[DesktopView]
) -> str | None:
    """T4: the pool's datastore holding the fewest live desktops (first listed wins ties)."""
    if not datastores:
        return None
    load = dict.fromkeys(datastores, 0)
    for d in desktops:
        if d.state in LIVE_STATES and d.datastore in load:
            load[d.datastore] += 1
    return min(datastores, key=lambda name: load[name])


def held_by(desktops: Iterable[DesktopView], user_id: str) -> DesktopView | None:
    """The live desktop a user holds in this pool, if any (C2, C4)."""
    for d in desktops:
        if d.user_id == user_id and d.state in (HELD_STATES | PROVISIONING_STATES):
            return d
    return None
