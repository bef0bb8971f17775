"""Find driver classes by kind, through the ``hotdesk.providers`` entry points."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from hotdesk.domain.errors import ValidationFailed
from hotdesk.providers.base import Provider

_BUILTIN = {
    "sim": "hotdesk.providers.sim:SimProvider",
    "libvirt": "hotdesk.providers.libvirt:LibvirtProvider",
}


def provider_kinds() -> dict[str, str]:
    """Every known driver kind and the object path that implements it."""
    kinds = dict(_BUILTIN)
    for ep in entry_points(group="hotdesk.providers"):
        kinds[ep.name] = ep.value
    return kinds


def provider_class(kind: str) -> type[Provider]:
    """Load the driver class of ``kind``; a clear error names unknown kinds."""
    kinds = provider_kinds()
    if kind not in kinds:
        raise ValidationFailed(
            "kind", f"unknown provider kind {kind!r} (known: {', '.join(sorted(kinds))})"
        )
    module_name, _, attr = kinds[kind].partition(":")
    module = __import__(module_name, fromlist=[attr])
    cls: type[Provider] = getattr(module, attr)
    return cls


def validate_provider_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """Validate a provider's settings with its driver's ``config_model``; return them cleaned."""
    cls = provider_class(kind)
    from pydantic import ValidationError

    try:
        model = cls.config_model.model_validate(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ValidationFailed(f"config.{where}", first["msg"]) from exc
    cleaned: dict[str, Any] = model.model_dump(mode="json")
    return cleaned


def build_provider(kind: str, config: dict[str, Any]) -> Provider:
    """Instantiate a driver from its validated settings."""
    cls = provider_class(kind)
    model = cls.config_model.model_validate(config)
    return cls(model)  # type: ignore[call-arg]
