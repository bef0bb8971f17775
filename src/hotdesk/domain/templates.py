"""Template revision specs: what a desktop is made of, validated."""

from __future__ import annotations

from typing import Any

from hotdesk.domain.errors import ValidationFailed

_KNOWN = {
    "image",
    "vcpus",
    "memory_mib",
    "disk_gib",
    "networks",
    "security_groups",
    "has_agent",
    "extra",
}


def validate_template_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise a template spec; raise ``ValidationFailed`` naming the field."""
    if not isinstance(spec, dict):
        raise ValidationFailed("spec", "a template spec is a mapping")
    unknown = sorted(set(spec) - _KNOWN)
    if unknown:
        raise ValidationFailed(
            f"spec.{unknown[0]}", f"unknown field (known: {', '.join(sorted(_KNOWN))})"
        )
    image = spec.get("image")
    if not isinstance(image, str) or not image.strip():
        raise ValidationFailed("spec.image", "an image is required")
    if len(image) > 1000:
        raise ValidationFailed("spec.image", "at most 1000 characters")
    if len(repr(spec.get("extra", {}))) > 20000:
        raise ValidationFailed("spec.extra", "at most 20000 characters of settings")
    out: dict[str, Any] = {"image": image.strip()}
    out["vcpus"] = _int(spec, "vcpus", 1, 1, 256)
    out["memory_mib"] = _int(spec, "memory_mib", 1024, 64, 1024 * 1024)
    if spec.get("disk_gib") is not None:
        out["disk_gib"] = _int(spec, "disk_gib", 0, 1, 65536)
    out["networks"] = _names(spec, "networks")
    out["security_groups"] = _names(spec, "security_groups")
    has_agent = spec.get("has_agent", False)
    if not isinstance(has_agent, bool):
        raise ValidationFailed("spec.has_agent", "must be true or false")
    out["has_agent"] = has_agent
    extra = spec.get("extra", {})
    if not isinstance(extra, dict):
        raise ValidationFailed("spec.extra", "must be a mapping")
    out["extra"] = extra
    return out


def _int(spec: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationFailed(f"spec.{key}", f"must be a whole number from {low} to {high}")
    return value


def _names(spec: dict[str, Any], key: str) -> list[str]:
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValidationFailed(f"spec.{key}", "must be a list of names")
    if len(value) > 64 or any(len(v) > 200 for v in value):
        raise ValidationFailed(f"spec.{key}", "at most 64 names of at most 200 characters")
    return list(value)
