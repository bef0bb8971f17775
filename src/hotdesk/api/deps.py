"""Dependencies of the routes: the broker context, settings and the acting user."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError

from hotdesk.services import auth, directory
from hotdesk.services.context import Actor, BrokerContext
from hotdesk.settings import ApiSettings

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A token from POST /api/v1/auth/login: `Authorization: Bearer hd_...`",
)


def get_ctx(request: Request) -> BrokerContext:
    """The broker context the app was built with."""
    return cast(BrokerContext, request.app.state.ctx)


def get_api_settings(request: Request) -> ApiSettings:
    """The HTTP server settings (token lifetime...)."""
    return cast(ApiSettings, request.app.state.api_settings)


Ctx = Annotated[BrokerContext, Depends(get_ctx)]
ApiConfig = Annotated[ApiSettings, Depends(get_api_settings)]


def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The presented bearer token; ``AuthenticationFailed`` (401) when there is none."""
    if credentials is None or not credentials.credentials:
        raise auth.AuthenticationFailed("a bearer token is required")
    return credentials.credentials


Token = Annotated[str, Depends(bearer_token)]


def current_actor(ctx: Ctx, token: Token) -> Actor:
    """The user the bearer token stands for (401 if unknown, expired or revoked)."""
    return auth.authenticate(ctx, token)


CurrentActor = Annotated[Actor, Depends(current_actor)]


def admin_actor(actor: CurrentActor) -> Actor:
    """The acting user, who must be a tenant administrator (403 otherwise)."""
    directory.require_admin(actor)
    return actor


AdminActor = Annotated[Actor, Depends(admin_actor)]


def optional_actor(
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Actor | None:
    """The acting user if a valid token is presented, else ``None`` (never 401)."""
    if credentials is None:
        return None
    try:
        return auth.authenticate(ctx, credentials.credentials)
    except (auth.AuthenticationFailed, SQLAlchemyError):
        return None
