"""Typed errors shared by every layer."""

from __future__ import annotations


class HotdeskError(Exception):
    """Base class of every error hotdesk raises on purpose."""


class ValidationFailed(HotdeskError):
    """Input is invalid; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(HotdeskError):
    """The named object does not exist (or is not visible to the caller)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class Conflict(HotdeskError):
    """The request conflicts with the current state (duplicate name, stale version...)."""


class Forbidden(HotdeskError):
    """The caller may not do this."""


class InvalidTransition(Conflict):
    """A desktop state change that the transition table does not allow."""


class ProviderError(HotdeskError):
    """A platform call failed."""


class TemporaryError(ProviderError):
    """The platform call may succeed later; retry after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay


class QuotaExceeded(TemporaryError):
    """The platform refused for lack of quota."""


class CapacityExceeded(TemporaryError):
    """The platform has no capacity left right now."""


class PermanentError(ProviderError):
    """The platform call will not succeed by retrying (bad image, bad config...)."""
