"""Fixtures of the API suite: the broker's API on the ``world`` (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from hotdesk.api.app import create_app
from hotdesk.services import auth
from tests.api.helpers import Api, TestClient
from tests.support import World


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> Iterator[None]:
    """Real argon2id, with the cheapest parameters: the world's admin is hashed per test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        yield


@pytest.fixture(scope="session")
def apps() -> dict[str, FastAPI]:
    """One app for the session: building the routes costs more than a test's requests."""
    return {}


@pytest.fixture
def api(world: World, apps: dict[str, FastAPI]) -> Iterator[Api]:
    """The API of the world's broker, on SQLite and PostgreSQL."""
    app = apps.get("app")
    if app is None:
        app = apps["app"] = create_app(world.ctx)
    app.state.ctx = world.ctx  # what create_app does; the routes read it per request
    with TestClient(app) as client:
        yield Api(client, world)
