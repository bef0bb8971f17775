"""``/auth``: password login, logout and "who am I"."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from hotdesk.api.deps import ApiConfig, Ctx, CurrentActor, Token
from hotdesk.api.schemas.auth import IdentityRead, LoginCreate, TokenRead
from hotdesk.services import auth

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login")
def login(body: LoginCreate, ctx: Ctx, config: ApiConfig) -> TokenRead:
    """Check a password and issue a bearer token (401 on wrong credentials)."""
    issued_at = ctx.now()
    token, actor = auth.login(
        ctx,
        tenant=body.tenant,
        username=body.username,
        password=body.password,
        ttl_hours=config.token_ttl_hours,
    )
    identity = auth.identify(ctx, actor)
    return TokenRead(
        token=token,
        expires_at=issued_at + timedelta(hours=config.token_ttl_hours),
        user=IdentityRead.model_validate(identity),
    )


@router.get("/me")
def who_am_i(ctx: Ctx, actor: CurrentActor) -> IdentityRead:
    """The user the presented token stands for."""
    return IdentityRead.model_validate(auth.identify(ctx, actor))


@router.post("/logout", status_code=204)
def logout(ctx: Ctx, _actor: CurrentActor, token: Token) -> None:
    """Revoke the presented token."""
    auth.revoke_token(ctx, token)
