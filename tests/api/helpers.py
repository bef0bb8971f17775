"""Helpers of the API suite: a client acting as a given user, status and 422 assertions."""

from __future__ import annotations

import warnings
from typing import Any

import httpx

from hotdesk.api.app import create_app
from hotdesk.services.context import Actor
from tests.support import World

with warnings.catch_warnings():
    # Starlette asks for the httpx2 package for its test client; httpx still works.
    warnings.filterwarnings("ignore", message=".*install `httpx2`")
    from fastapi.testclient import TestClient

PREFIX = "/api/v1"


class Api:
    """A test client bound to a world, sending requests as a given actor."""

    def __init__(self, client: TestClient, world: World) -> None:
        self.client = client
        self.world = world
        self._tokens: dict[str, str] = {}

    @property
    def admin(self) -> Actor:
        """The world's tenant administrator."""
        return self.world.admin

    def headers(self, actor: Actor | None) -> dict[str, str]:
        """Bearer headers for an actor (one token per actor, no password hashing)."""
        if actor is None:
            return {}
        assert actor.user_id is not None
        if actor.user_id not in self._tokens:
            self._tokens[actor.user_id] = self.world.token(actor)
        return {"Authorization": f"Bearer {self._tokens[actor.user_id]}"}

    def request(
        self, method: str, path: str, actor: Actor | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send a request under ``/api/v1`` as ``actor`` (anonymous when ``None``)."""
        headers = {**self.headers(actor), **kwargs.pop("headers", {})}
        return self.client.request(method, PREFIX + path, headers=headers, **kwargs)

    def get(self, path: str, actor: Actor | None = None, **kwargs: Any) -> httpx.Response:
        """GET as ``actor``."""
        return self.request("GET", path, actor, **kwargs)

    def post(self, path: str, actor: Actor | None = None, **kwargs: Any) -> httpx.Response:
        """POST as ``actor``."""
        return self.request("POST", path, actor, **kwargs)

    def put(self, path: str, actor: Actor | None = None, **kwargs: Any) -> httpx.Response:
        """PUT as ``actor``."""
        return self.request("PUT", path, actor, **kwargs)

    def delete(self, path: str, actor: Actor | None = None, **kwargs: Any) -> httpx.Response:
        """DELETE as ``actor``."""
        return self.request("DELETE", path, actor, **kwargs)


def expect(response: httpx.Response, status: int) -> Any:
    """Assert the status (showing the body when it differs) and return the JSON body."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


def expect_invalid(response: httpx.Response, field: str) -> str:
    """Assert a 422 naming ``field``; return the message."""
    body = expect(response, 422)
    assert body["field"] == field, body
    assert isinstance(body["detail"], str) and body["detail"]
    return str(body["detail"])


def make_client(world: World) -> TestClient:
    """A test client for an app built on the world's context."""
    return TestClient(create_app(world.ctx))
