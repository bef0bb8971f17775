"""The FastAPI application factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import Lifespan

from hotdesk import __version__
from hotdesk.api.errors import install_error_handlers
from hotdesk.api.request_ids import install_request_ids
from hotdesk.api.routers import (
    agent,
    apply,
    auth,
    console,
    desktops,
    directory,
    health,
    me,
    metrics,
    pools,
    providers,
    templates,
    web,
)
from hotdesk.api.schemas.common import ErrorRead, ValidationErrorRead
from hotdesk.services.context import BrokerContext
from hotdesk.settings import ApiSettings, Settings

API_PREFIX = "/api/v1"

DESCRIPTION = """\
hotdesk brokers **dynamic (floating, non-persistent) desktop pools**: desktops are prepared
in advance, claimed on demand with *Connect*, and destroyed after use.

Authenticate with `POST /api/v1/auth/login`, then send `Authorization: Bearer <token>`.
Errors are JSON `{"detail": "..."}`; invalid input answers 422 with `field` naming the
offending field (dotted path, e.g. `permissions[0].may`) and changes nothing.

Note: the provider kind **`sim` is a simulator**: an in-memory platform for tests, demos
and capacity planning. It never creates real virtual machines.
"""

TAGS: list[dict[str, Any]] = [
    {"name": "auth", "description": "Password login, bearer tokens, logout."},
    {"name": "me", "description": "The user's portal: pool cards, Connect, the waiting queue."},
    {"name": "pools", "description": "Pool definitions, status, entitlements, Recreate."},
    {"name": "desktops", "description": "Desktops of the tenant (administrators)."},
    {"name": "operations", "description": "Power and console-log operations (O1)."},
    {"name": "events", "description": "The audit/event log (O2)."},
    {
        "name": "providers",
        "description": "Platform instances. Kind `sim` is a SIMULATOR (no real VMs).",
    },
    {"name": "templates", "description": "Versioned templates (each change is a revision)."},
    {"name": "users", "description": "Local users of the tenant."},
    {"name": "groups", "description": "Groups of users."},
    {"name": "organizations", "description": "The organisation tree."},
    {"name": "health", "description": "Liveness and readiness probes."},
]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorRead, "description": "missing, unknown or expired bearer token"},
    403: {"model": ErrorRead, "description": "not allowed (e.g. needs tenant-admin)"},
    404: {"model": ErrorRead, "description": "not found (or not visible to the caller)"},
    409: {"model": ErrorRead, "description": "conflicts with the current state"},
    422: {"model": ValidationErrorRead, "description": "invalid input; `field` names it"},
}


def create_app(
    ctx: BrokerContext,
    *,
    lifespan: Lifespan[FastAPI] | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """Build the API app around a broker context (kept in ``app.state.ctx``)."""
    app = FastAPI(
        title="hotdesk",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.state.settings = settings
    app.state.api_settings = settings.api if settings is not None else ApiSettings()
    install_error_handlers(app)
    for module in (auth, me, pools, desktops, providers, templates, directory, apply, agent):
        app.include_router(module.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    app.include_router(console.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)
    web.install(app, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(metrics.router)
    install_request_ids(app)
    return app
