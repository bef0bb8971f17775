"""Fixtures of the API suite: the broker's API on the ``world`` (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from hotdesk.services import auth
from tests.api.helpers import Api, make_client
from tests.support import World


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> Iterator[None]:
    """Real argon2id, with the cheapest parameters: the world's admin is hashed per test."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        yield


@pytest.fixture
def api(world: World) -> Iterator[Api]:
    """The API of the world's broker, on SQLite and PostgreSQL."""
    with make_client(world) as client:
        yield Api(client, world)
