"""Declarative apply (P3): Kubernetes-style documents applied idempotently through the services.

A batch is checked in full (shape, then references against the database and the batch
itself) before anything is written; then every document is saved in dependency order with
the ordinary use cases, which report whether anything changed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import select

from hotdesk.db.models import GroupRow, OrganizationRow, PoolRow, ProviderRow, TemplateRow, UserRow
from hotdesk.domain.durations import parse_duration
from hotdesk.domain.errors import Conflict, HotdeskError, NotFound, ValidationFailed
from hotdesk.domain.pools import (
    ROLES,
    PermissionRule,
    PoolSpec,
    ProviderFacts,
    validate_name,
    validate_pool_spec,
)
from hotdesk.domain.templates import validate_template_spec
from hotdesk.providers.registry import validate_provider_config
from hotdesk.services import catalog, directory, pools
from hotdesk.services.auth import verify_password
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.services.pools import EntitlementLine

KINDS = ("Organization", "User", "Group", "Provider", "Template", "Pool")
"""Every kind a document may have, in the order a batch is applied."""
API_VERSION = "hotdesk/v1"


@dataclass(frozen=True)
class ApplyResult:
    """What applying one document did: ``action`` is created, updated or unchanged."""

    kind: str
    name: str
    action: str
    index: int


@dataclass(frozen=True)
class Document:
    """A well-formed document; ``index`` counts from 1 in the order given."""

    index: int
    kind: str
    name: str
    spec: dict[str, Any]


class ApplyError(HotdeskError):
    """A document of a batch is invalid or could not be applied; names the document and field."""

    def __init__(
        self, index: int, kind: str | None, name: str | None, field: str | None, message: str
    ) -> None:
        self.index, self.kind, self.name = index, kind, name
        self.field, self.message = field, message
        label = f"document {index}"
        if kind and name:
            label += f' ({kind} "{name}")'
        elif kind:
            label += f" ({kind})"
        super().__init__(f"{label}: {field}: {message}" if field else f"{label}: {message}")


def apply_documents(
    ctx: BrokerContext, actor: Actor, documents: Sequence[Any]
) -> list[ApplyResult]:
    """Apply a batch of documents idempotently, in dependency order.

    Every document is checked before anything changes; one bad document refuses the batch
    with an ``ApplyError`` naming it. Returns one result per document, in the order applied.
    """
    directory.require_admin(actor)
    ordered = order_documents(parse_documents(documents))
    before = _load_known(ctx, actor.tenant_id)
    _check_batch(ordered, copy.deepcopy(before))
    results = []
    for doc in ordered:
        with _blame(doc):
            changed = _HANDLERS[doc.kind][1](ctx, actor, doc, before)
        action = "updated" if changed else "unchanged"
        if doc.name not in before.names(doc.kind):
            action = "created"
        results.append(ApplyResult(kind=doc.kind, name=doc.name, action=action, index=doc.index))
    return results


# --- shape -----------------------------------------------------------------------------

_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "map": ("a mapping", lambda v: isinstance(v, dict)),
    "[str]": ("a list of strings", lambda v: isinstance(v, list) and all(_is_str(i) for i in v)),
    "[map]": ("a list of mappings", lambda v: isinstance(v, list) and all(_is_map(i) for i in v)),
}
_SCHEMA = {
    "Organization": "parent:str display_name:str",
    "User": "password:str role:str display_name:str organization:str disabled:bool",
    "Group": "members:[str]",
    "Provider": "kind:str! config:map max_concurrent_provisioning:int",
    "Template": "image:str! vcpus:int memory_mib:int disk_gib:int networks:[str] "
    "security_groups:[str] has_agent:bool extra:map",
    "Pool": "provider:str! template:str! max_desktops:int! warm_desktops:int! retention:str! "
    "name_pattern:str sequence_start:int display_name_pattern:str target:str project:str "
    "auto_create_project:bool network:str datastores:[str] provision_concurrency:int "
    "login_on_assignment:bool permissions:[map] entitlements:[map]",
    "permissions": "user:str role:str may:[str]",
    "entitlements": "user:str group:str organization:str include_suborganizations:bool",
}
FIELDS: dict[str, dict[str, str]] = {
    key: dict(item.rstrip("!").split(":") for item in text.split()) for key, text in _SCHEMA.items()
}
"""Each kind's ``spec`` fields (and the items of ``permissions`` and ``entitlements``): type."""
REQUIRED: dict[str, tuple[str, ...]] = {
    key: tuple(item.split(":")[0] for item in text.split() if item.endswith("!"))
    for key, text in _SCHEMA.items()
}
_SUBJECTS = ("user", "group", "organization")


def parse_documents(documents: Sequence[Any]) -> list[Document]:
    """Check the shape of every document (kind, name, spec fields and types); no database."""
    parsed: list[Document] = []
    seen: set[tuple[str, str]] = set()
    for index, raw in enumerate(documents, start=1):
        doc = _parse_one(index, raw)
        if (doc.kind, doc.name) in seen:
            raise ApplyError(index, doc.kind, doc.name, "metadata.name", "listed twice")
        seen.add((doc.kind, doc.name))
        parsed.append(doc)
    return parsed


def _parse_one(index: int, raw: Any) -> Document:
    if not isinstance(raw, dict):
        raise ApplyError(index, None, None, None, "a document is a mapping: kind, metadata, spec")
    kind = raw.get("kind")
    if kind not in KINDS:
        message = "required" if kind is None else f"unknown kind {kind!r}"
        raise ApplyError(index, None, None, "kind", f"{message} (known: {', '.join(KINDS)})")
    meta = raw.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        raise ApplyError(index, kind, None, "metadata.name", "required (a string)")

    def fail(where: str, message: str) -> ApplyError:
        return ApplyError(index, kind, name, where, message)

    extra = sorted(set(raw) - {"apiVersion", "kind", "metadata", "spec"})
    if extra:
        raise fail(extra[0], "unknown field (known: apiVersion, kind, metadata, spec)")
    if raw.get("apiVersion", API_VERSION) != API_VERSION:
        raise fail("apiVersion", f"must be {API_VERSION}")
    assert isinstance(meta, dict)
    extra = sorted(set(meta) - {"name"})
    if extra:
        raise fail(f"metadata.{extra[0]}", "unknown field (known: name)")
    try:
        validate_name(name)
    except ValidationFailed as exc:
        raise fail("metadata.name", exc.message) from exc
    spec = raw.get("spec")
    spec = {} if spec is None else spec
    if not isinstance(spec, dict):
        raise fail("spec", "must be a mapping")
    spec = {k: v for k, v in spec.items() if v is not None}
    _check_fields(spec, FIELDS[kind], "spec", fail)
    for key in REQUIRED.get(kind, ()):
        if key not in spec:
            raise fail(f"spec.{key}", "required")
    for key in ("permissions", "entitlements"):
        items = [{k: v for k, v in item.items() if v is not None} for item in spec.get(key, [])]
        for i, item in enumerate(items):
            _check_fields(item, FIELDS[key], f"spec.{key}[{i}]", fail)
        if key in spec:
            spec[key] = items
    return Document(index=index, kind=kind, name=name, spec=spec)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_map(value: Any) -> bool:
    return isinstance(value, dict)


def _check_fields(
    data: dict[str, Any],
    known: dict[str, str],
    where: str,
    fail: Callable[[str, str], ApplyError],
) -> None:
    for key, value in data.items():
        if key not in known:
            raise fail(f"{where}.{key}", f"unknown field (known: {', '.join(known)})")
        description, ok = _TYPES[known[key]]
        if value is not None and not ok(value):
            raise fail(f"{where}.{key}", f"must be {description}, not {value!r}")


def order_documents(docs: Sequence[Document]) -> list[Document]:
    """Dependency order: kinds as in ``KINDS``, organisations parents first, else as given."""
    by_kind = sorted(docs, key=lambda d: (KINDS.index(d.kind), d.index))
    orgs = {d.name: d for d in by_kind if d.kind == "Organization"}
    ordered: list[Document] = []
    done: set[str] = set()

    def visit(doc: Document, path: tuple[str, ...]) -> None:
        if doc.name in done:
            return
        parent = doc.spec.get("parent")
        if parent in path or parent == doc.name:
            raise ApplyError(doc.index, doc.kind, doc.name, "spec.parent", "the tree has a cycle")
        if parent in orgs:
            visit(orgs[parent], (*path, doc.name))
        done.add(doc.name)
        ordered.append(doc)

    for doc in orgs.values():
        visit(doc, ())
    return ordered + [d for d in by_kind if d.kind != "Organization"]


# --- checks against the database and the batch -------------------------------------------


@dataclass
class _Known:
    """Names (and what checks need) of the tenant's objects; updated as the batch is checked."""

    orgs: dict[str, str | None] = field(default_factory=dict)  # name -> parent name
    users: dict[str, str | None] = field(default_factory=dict)  # name -> password hash
    groups: set[str] = field(default_factory=set)
    providers: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    templates: set[str] = field(default_factory=set)
    pools: dict[str, tuple[str, str, bool]] = field(default_factory=dict)  # provider, pattern

    def names(self, kind: str) -> set[str]:
        """The known names of a kind."""
        return set(getattr(self, _ATTRIBUTES[kind]))


_ATTRIBUTES = dict(
    zip(KINDS, ("orgs", "users", "groups", "providers", "templates", "pools"), strict=True)
)


def _load_known(ctx: BrokerContext, tenant_id: str) -> _Known:
    known = _Known()
    with ctx.db.read() as session:
        orgs = session.scalars(
            select(OrganizationRow).where(OrganizationRow.tenant_id == tenant_id)
        )
        by_id = {org.id: org for org in orgs}
        for org in by_id.values():
            known.orgs[org.name] = by_id[org.parent_id].name if org.parent_id else None
        for user in session.scalars(select(UserRow).where(UserRow.tenant_id == tenant_id)):
            known.users[user.username] = user.password_hash
        known.groups = set(
            session.scalars(select(GroupRow.name).where(GroupRow.tenant_id == tenant_id))
        )
        providers = session.scalars(select(ProviderRow).where(ProviderRow.tenant_id == tenant_id))
        names = {}
        for p in providers:
            known.providers[p.name] = (p.kind, dict(p.config or {}))
            names[p.id] = p.name
        known.templates = set(
            session.scalars(select(TemplateRow.name).where(TemplateRow.tenant_id == tenant_id))
        )
        for pool in session.scalars(
            select(PoolRow).where(PoolRow.tenant_id == tenant_id, PoolRow.deleted_at.is_(None))
        ):
            pattern = str(pool.spec.get("name_pattern"))
            known.pools[pool.name] = (names[pool.provider_id], pattern, pool.draining)
    return known


@contextmanager
def _blame(doc: Document) -> Iterator[None]:
    """Turn a use case's error into an ``ApplyError`` naming the document (``spec.`` fields)."""
    try:
        yield
    except ValidationFailed as exc:
        where = exc.field
        if where in ("name", "username"):
            where = "metadata.name"
        elif where != "spec" and not where.startswith("spec."):
            where = f"spec.{where}"
        raise ApplyError(doc.index, doc.kind, doc.name, where, exc.message) from exc
    except (NotFound, Conflict) as exc:
        raise ApplyError(doc.index, doc.kind, doc.name, None, str(exc)) from exc


def _check_batch(ordered: Sequence[Document], known: _Known) -> None:
    """Check every document against what exists plus what the batch creates before it."""
    for doc in ordered:
        with _blame(doc):
            _HANDLERS[doc.kind][0](doc, known)


def _require(names: Any, value: str, where: str, what: str) -> None:
    if value not in names:
        raise ValidationFailed(where, f"unknown {what} {value!r}")


def _check_organization(doc: Document, known: _Known) -> None:
    if "parent" in doc.spec:
        _require(known.orgs, doc.spec["parent"], "parent", "organization")
    known.orgs[doc.name] = doc.spec.get("parent")


def _check_user(doc: Document, known: _Known) -> None:
    role, password = doc.spec.get("role"), doc.spec.get("password")
    if role is not None and role not in ROLES:
        raise ValidationFailed("role", f"unknown role {role!r} (known: {', '.join(ROLES)})")
    if password is not None and len(password) < 8:
        raise ValidationFailed("password", "a password has at least 8 characters")
    if "organization" in doc.spec:
        _require(known.orgs, doc.spec["organization"], "organization", "organization")
    known.users.setdefault(doc.name, None)


def _check_group(doc: Document, known: _Known) -> None:
    for i, member in enumerate(doc.spec.get("members", [])):
        _require(known.users, member, f"members[{i}]", "user")
    known.groups.add(doc.name)


def _check_provider(doc: Document, known: _Known) -> None:
    kind = doc.spec["kind"]
    if doc.name in known.providers and known.providers[doc.name][0] != kind:
        old = known.providers[doc.name][0]
        raise ValidationFailed("kind", f"provider {doc.name!r} is {old}; kind cannot change")
    max_concurrent = doc.spec.get("max_concurrent_provisioning", 10)
    if not 1 <= max_concurrent <= 10000:
        raise ValidationFailed("max_concurrent_provisioning", "must be from 1 to 10000")
    known.providers[doc.name] = (kind, validate_provider_config(kind, doc.spec.get("config", {})))


def _check_template(doc: Document, known: _Known) -> None:
    validate_template_spec(doc.spec)
    known.templates.add(doc.name)


def _check_pool(doc: Document, known: _Known) -> None:
    spec = pool_spec(doc.name, doc.spec)
    facts = {
        name: ProviderFacts(
            networks=frozenset(config.get("networks") or ()),
            targets=frozenset(config.get("targets") or ()),
            datastores=frozenset(config.get("datastores") or ()),
        )
        for name, (_, config) in known.providers.items()
    }
    validate_pool_spec(spec, templates=known.templates, providers=facts)
    for i, line in enumerate(entitlement_lines(doc.spec) or []):
        names = {"user": known.users, "group": known.groups, "organization": known.orgs}
        _require(names[line.kind], line.name, f"entitlements[{i}].{line.kind}", line.kind)
    for other, (provider, pattern, _) in known.pools.items():
        if other != doc.name and provider == spec.provider and pattern == spec.name_pattern:
            raise ValidationFailed(
                "name_pattern",
                f"pool {other!r} on the same provider already uses this name pattern",
            )
    if known.pools.get(doc.name, ("", "", False))[2]:
        raise Conflict(f"pool {doc.name!r} is being deleted")
    known.pools[doc.name] = (spec.provider, spec.name_pattern, False)


def pool_spec(name: str, spec: dict[str, Any]) -> PoolSpec:
    """A pool document's spec as a domain ``PoolSpec`` (``name_pattern`` defaults to name-N)."""
    names = {f.name for f in fields(PoolSpec)}
    values = {k: v for k, v in spec.items() if k in names}
    try:
        values["retention"] = parse_duration(spec["retention"])
    except ValueError as exc:
        raise ValidationFailed("retention", str(exc)) from exc
    values["datastores"] = tuple(spec.get("datastores", ()))
    values.setdefault("name_pattern", f"{name}-{{SEQUENCE}}")
    values["permissions"] = tuple(
        PermissionRule(may=tuple(rule.get("may", ())), user=rule.get("user"), role=rule.get("role"))
        for rule in spec.get("permissions", ())
    )
    return PoolSpec(name=name, **values)


def entitlement_lines(spec: dict[str, Any]) -> list[EntitlementLine] | None:
    """A pool document's entitlements (``None`` when absent: keep the current ones)."""
    if "entitlements" not in spec:
        return None
    lines = []
    for i, item in enumerate(spec["entitlements"]):
        subjects = [key for key in _SUBJECTS if key in item]
        if len(subjects) != 1:
            raise ValidationFailed(
                f"entitlements[{i}]", "name exactly one of user, group or organization"
            )
        subs = item.get("include_suborganizations", False)
        if subs and subjects[0] != "organization":
            raise ValidationFailed(
                f"entitlements[{i}].include_suborganizations", "only organizations have them"
            )
        lines.append(EntitlementLine(subjects[0], item[subjects[0]], subs))
    return lines


# --- saving ------------------------------------------------------------------------------


def _save_organization(ctx: BrokerContext, actor: Actor, doc: Document, _: _Known) -> bool:
    return directory.save_organization(
        ctx,
        actor,
        doc.name,
        parent=doc.spec.get("parent"),
        display_name=doc.spec.get("display_name"),
    )[1]


def _save_user(ctx: BrokerContext, actor: Actor, doc: Document, before: _Known) -> bool:
    password = doc.spec.get("password")
    if password is not None and verify_password(before.users.get(doc.name), password):
        password = None  # unchanged: do not rehash (and do not report a change)
    data = directory.UserInput(
        username=doc.name,
        password=password,
        role=doc.spec.get("role"),
        display_name=doc.spec.get("display_name"),
        organization=doc.spec.get("organization"),
        disabled=doc.spec.get("disabled"),
    )
    return directory.save_user(ctx, actor, data)[1]


def _save_group(ctx: BrokerContext, actor: Actor, doc: Document, _: _Known) -> bool:
    return directory.save_group(ctx, actor, doc.name, doc.spec.get("members"))[1]


def _save_provider(ctx: BrokerContext, actor: Actor, doc: Document, _: _Known) -> bool:
    return catalog.save_provider(
        ctx,
        actor,
        doc.name,
        kind=doc.spec["kind"],
        config=doc.spec.get("config", {}),
        max_concurrent_provisioning=doc.spec.get("max_concurrent_provisioning", 10),
    )[1]


def _save_template(ctx: BrokerContext, actor: Actor, doc: Document, _: _Known) -> bool:
    return catalog.save_template(ctx, actor, doc.name, doc.spec)[2]


def _save_pool(ctx: BrokerContext, actor: Actor, doc: Document, _: _Known) -> bool:
    changed = pools.save_pool(ctx, actor, pool_spec(doc.name, doc.spec))[1]
    lines = entitlement_lines(doc.spec)
    if lines is not None:
        changed |= pools.set_entitlements(ctx, actor, doc.name, lines)
    return changed


_Check = Callable[[Document, _Known], None]
_Save = Callable[[BrokerContext, Actor, Document, _Known], bool]
_HANDLERS: dict[str, tuple[_Check, _Save]] = {
    "Organization": (_check_organization, _save_organization),
    "User": (_check_user, _save_user),
    "Group": (_check_group, _save_group),
    "Provider": (_check_provider, _save_provider),
    "Template": (_check_template, _save_template),
    "Pool": (_check_pool, _save_pool),
}
