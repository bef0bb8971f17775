"""Domain errors to HTTP answers: ``{"detail": message}`` plus ``field`` for 422."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError

from hotdesk.domain.errors import (
    Conflict,
    Forbidden,
    HotdeskError,
    NotFound,
    ProviderError,
    ValidationFailed,
)
from hotdesk.services.auth import AuthenticationFailed

log = logging.getLogger("hotdesk.api")

#: Checked in order: the first matching class gives the status.
STATUS_BY_ERROR: tuple[tuple[type[HotdeskError], int], ...] = (
    (ValidationFailed, 422),
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),  # includes InvalidTransition
    (ProviderError, 502),
)
_LOCATIONS = ("body", "query", "path", "header", "cookie")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn hotdesk and validation errors into JSON answers."""
    app.add_exception_handler(HotdeskError, handle_hotdesk_error)
    app.add_exception_handler(AuthenticationFailed, handle_authentication_failed)
    app.add_exception_handler(RequestValidationError, handle_request_validation)
    app.add_exception_handler(IntegrityError, handle_integrity_error)
    app.add_exception_handler(OperationalError, handle_database_unavailable)


async def handle_hotdesk_error(_request: Request, exc: Exception) -> JSONResponse:
    """ValidationFailed 422 (naming the field), NotFound 404, Forbidden 403, Conflict 409."""
    if isinstance(exc, ValidationFailed):
        return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=422)
    status = next((code for cls, code in STATUS_BY_ERROR if isinstance(exc, cls)), 400)
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def handle_authentication_failed(_request: Request, exc: Exception) -> JSONResponse:
    """401 with a ``WWW-Authenticate: Bearer`` challenge."""
    return JSONResponse(
        {"detail": str(exc) or "authentication required"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def handle_request_validation(_request: Request, exc: Exception) -> JSONResponse:
    """Malformed input: 422 naming the first bad field (dotted path), and every error."""
    assert isinstance(exc, RequestValidationError)
    errors = [_error_entry(e) for e in exc.errors()]
    first = errors[0] if errors else {"field": "body", "detail": "invalid request"}
    return JSONResponse(
        {"detail": first["detail"], "field": first["field"], "errors": errors}, status_code=422
    )


async def handle_integrity_error(_request: Request, exc: Exception) -> JSONResponse:
    """A uniqueness race lost to a concurrent request: 409, never 500."""
    log.warning("integrity error answered with 409: %s", exc)
    return JSONResponse(
        {"detail": "the request conflicts with a concurrent change; retry"}, status_code=409
    )


async def handle_database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    """The database does not answer: 503 with a retry hint (see ``/readyz``)."""
    log.error("database unavailable: %s", exc)
    return JSONResponse(
        {"detail": "the database is unavailable; retry shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def field_path(loc: Sequence[int | str]) -> str:
    """``("body", "permissions", 0, "may")`` -> ``"permissions[0].may"``."""
    parts = list(loc[1:]) if loc and loc[0] in _LOCATIONS else list(loc)
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or (str(loc[0]) if loc else "body")


def _error_entry(error: Any) -> dict[str, str]:
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if error.get("type") == "json_invalid":
        return {"field": "body", "detail": f"the body is not valid JSON: {message}"}
    return {"field": field_path(tuple(error.get("loc", ()))), "detail": message}
