"""Local users' passwords (argon2) and bearer tokens (only their SHA-256 is stored)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from hotdesk.db.models import TenantRow, TokenRow, UserRow
from hotdesk.domain.errors import ValidationFailed
from hotdesk.services.context import Actor, BrokerContext

_hasher = PasswordHasher()


class AuthenticationFailed(Exception):
    """Wrong credentials or an unknown, expired or revoked token."""


def hash_password(password: str) -> str:
    """Hash a password with argon2id."""
    if not isinstance(password, str) or len(password) < 8:
        raise ValidationFailed("password", "a password has at least 8 characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Tell whether ``password`` matches the stored hash."""
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    """A hash to verify against when the user is unknown, so timing does not tell."""
    if not _DUMMY:
        _DUMMY.append(_hasher.hash(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login(
    ctx: BrokerContext, *, tenant: str, username: str, password: str, ttl_hours: float = 12.0
) -> tuple[str, Actor]:
    """Check a password and issue a bearer token."""
    with ctx.db.read() as session:
        user = session.scalar(
            select(UserRow)
            .join(TenantRow, TenantRow.id == UserRow.tenant_id)
            .where(TenantRow.name == tenant, UserRow.username == username)
        )
        user_id = user.id if user and not user.disabled else None
        stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
        ok = verify_password(stored, password) and user is not None  # same work either way
    if not ok or user_id is None:
        raise AuthenticationFailed("wrong tenant, user name or password")
    token = issue_token(ctx, user_id, ttl_hours=ttl_hours, label="login")
    actor = authenticate(ctx, token)
    return token, actor


def issue_token(
    ctx: BrokerContext, user_id: str, *, ttl_hours: float | None = 12.0, label: str | None = None
) -> str:
    """Create a bearer token for a user (``ttl_hours=None``: no expiry)."""
    token = "hd_" + secrets.token_urlsafe(32)
    now = ctx.now()
    with ctx.db.write() as session:
        session.add(
            TokenRow(
                user_id=user_id,
                token_hash=_digest(token),
                label=label,
                created_at=now,
                expires_at=None if ttl_hours is None else now + timedelta(hours=ttl_hours),
            )
        )
    return token


def authenticate(ctx: BrokerContext, token: str) -> Actor:
    """The actor a bearer token stands for."""
    with ctx.db.read() as session:
        row = session.scalar(select(TokenRow).where(TokenRow.token_hash == _digest(token)))
        if row is None or (row.expires_at is not None and row.expires_at <= ctx.now()):
            raise AuthenticationFailed("unknown or expired token")
        user = session.get(UserRow, row.user_id)
        if user is None or user.disabled:
            raise AuthenticationFailed("the user is disabled")
        return Actor(
            tenant_id=user.tenant_id, user_id=user.id, username=user.username, role=user.role
        )


def revoke_tokens(ctx: BrokerContext, user_id: str) -> None:
    """Revoke every token of a user."""
    with ctx.db.write() as session:
        session.execute(delete(TokenRow).where(TokenRow.user_id == user_id))


def revoke_token(ctx: BrokerContext, token: str) -> bool:
    """Revoke one bearer token (logout); tell whether it existed."""
    with ctx.db.write() as session:
        result = session.execute(delete(TokenRow).where(TokenRow.token_hash == _digest(token)))
        return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Identity:
    """Who an actor is, as shown to that actor (``GET /auth/me``)."""

    username: str
    role: str
    tenant: str
    display_name: str | None


def identify(ctx: BrokerContext, actor: Actor) -> Identity:
    """The actor's user name, role, tenant name and display name."""
    with ctx.db.read() as session:
        tenant = session.get(TenantRow, actor.tenant_id)
        user = session.get(UserRow, actor.user_id) if actor.user_id else None
        return Identity(
            username=actor.username,
            role=actor.role,
            tenant=tenant.name if tenant else actor.tenant_id,
            display_name=user.display_name if user else None,
        )
