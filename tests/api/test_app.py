"""The app itself: the OpenAPI document, health probes and the error mapping."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.exc import IntegrityError

from hotdesk.api.app import create_app
from hotdesk.api.errors import field_path
from hotdesk.api.schemas.pools import PoolCreate, PoolRead, PoolUpdate
from hotdesk.db.engine import Database
from hotdesk.domain.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    NotFound,
    ProviderError,
    ValidationFailed,
)
from hotdesk.domain.pools import PoolSpec
from hotdesk.services.auth import AuthenticationFailed
from hotdesk.services.context import BrokerContext
from hotdesk.services.health import record_health
from hotdesk.services.leases import Instance, refresh_leases
from tests.api.helpers import Api, TestClient, expect

EXPECTED_ROUTES = {
    ("post", "/auth/login"),
    ("get", "/auth/me"),
    ("post", "/auth/logout"),
    ("get", "/providers"),
    ("post", "/providers"),
    ("get", "/providers/{name}"),
    ("put", "/providers/{name}"),
    ("delete", "/providers/{name}"),
    ("get", "/templates"),
    ("post", "/templates"),
    ("get", "/templates/{name}"),
    ("put", "/templates/{name}"),
    ("delete", "/templates/{name}"),
    ("get", "/templates/{name}/revisions"),
    ("get", "/users"),
    ("post", "/users"),
    ("get", "/users/{username}"),
    ("put", "/users/{username}"),
    ("delete", "/users/{username}"),
    ("get", "/groups"),
    ("post", "/groups"),
    ("get", "/groups/{name}"),
    ("put", "/groups/{name}"),
    ("delete", "/groups/{name}"),
    ("get", "/organizations"),
    ("post", "/organizations"),
    ("get", "/organizations/{name}"),
    ("put", "/organizations/{name}"),
    ("delete", "/organizations/{name}"),
    ("get", "/pools"),
    ("post", "/pools"),
    ("get", "/pools/{name}"),
    ("put", "/pools/{name}"),
    ("delete", "/pools/{name}"),
    ("get", "/pools/{name}/status"),
    ("get", "/pools/{name}/entitlements"),
    ("put", "/pools/{name}/entitlements"),
    ("post", "/pools/{name}/recreate"),
    ("get", "/pools/{name}/desktops"),
    ("get", "/pools/{name}/events"),
    ("get", "/desktops"),
    ("get", "/desktops/{desktop_id}"),
    ("post", "/desktops/{desktop_id}/release"),
    ("delete", "/desktops/{desktop_id}"),
    ("post", "/desktops/{desktop_id}/operations"),
    ("get", "/operations/{operation_id}"),
    ("get", "/desktops/{desktop_id}/events"),
    ("get", "/events"),
    ("get", "/me/pools"),
    ("get", "/me/pools/{name}"),
    ("post", "/me/pools/{name}/connect"),
    ("post", "/me/pools/{name}/disconnect"),
    ("post", "/me/pools/{name}/release"),
    ("post", "/me/pools/{name}/cancel"),
    ("post", "/me/desktops/{desktop_id}/operations"),
}


@pytest.fixture
def offline_ctx() -> BrokerContext:
    """A context whose database (PostgreSQL on a closed port) never answers."""
    return BrokerContext(
        db=Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"),
        broker_id="hd-test",
    )


def test_openapi_document_lists_every_route(offline_ctx: BrokerContext) -> None:
    with TestClient(create_app(offline_ctx)) as client:
        doc = expect(client.get("/openapi.json"), 200)
    assert doc["info"]["title"] == "hotdesk"
    assert "`sim` is a simulator" in doc["info"]["description"]
    operations = {
        (method, path.removeprefix("/api/v1"))
        for path, item in doc["paths"].items()
        for method in item
    }
    assert operations >= EXPECTED_ROUTES
    assert {("get", "/healthz"), ("get", "/readyz")} <= operations
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    pool_put = doc["paths"]["/api/v1/pools/{name}"]["put"]["responses"]["422"]
    assert pool_put["content"]["application/json"]["schema"]["$ref"].endswith("ValidationErrorRead")


def test_health_probes(api: Api) -> None:
    client, admin, world = api.client, api.admin, api.world
    assert expect(client.get("/healthz"), 200) == {"status": "ok"}
    anonymous = expect(client.get("/readyz"), 200)
    assert anonymous["status"] == "ok" and anonymous["database"]["ok"] is True
    assert anonymous["summary"] == {"healthy": 0, "failing": 0, "unchecked": 1}
    assert anonymous["providers"] is None  # provider names are tenant data
    user = world.user("alice")
    assert expect(client.get("/readyz", headers=api.headers(user)), 200)["providers"] is None

    refresh_leases(world.ctx, Instance.new())  # one more broker process heartbeats
    assert expect(client.get("/readyz"), 200)["brokers"] == anonymous["brokers"] + 1

    facts = {"breaker": "open"}
    record_health(world.ctx, _provider_id(api), ok=False, detail="simulated outage", facts=facts)
    detailed = expect(client.get("/readyz", headers=api.headers(admin)), 200)
    assert detailed["status"] == "degraded"  # still 200: prepared desktops keep working (S1)
    assert detailed["summary"]["failing"] == 1
    [sim] = detailed["providers"]
    assert (sim["name"], sim["ok"], sim["detail"]) == ("sim", False, "simulated outage")
    assert sim["breaker"] == "open"
    assert sim["checked_at"] is not None
    provider = expect(api.get("/providers/sim", admin), 200)
    assert (provider["health_ok"], provider["health_detail"]) == (False, "simulated outage")


def _provider_id(api: Api) -> str:
    from hotdesk.services.catalog import get_provider

    return get_provider(api.world.ctx, api.admin, "sim").id


def test_database_down_answers_503(offline_ctx: BrokerContext) -> None:
    with TestClient(create_app(offline_ctx)) as client:
        assert expect(client.get("/healthz"), 200) == {"status": "ok"}
        ready = expect(client.get("/readyz"), 503)
        assert ready["status"] == "unavailable" and ready["database"]["ok"] is False
        assert "nobody" not in ready["database"]["detail"]  # no connection details leak
        down = client.get("/api/v1/pools", headers={"Authorization": "Bearer hd_x"})
        assert down.status_code == 503 and down.headers["Retry-After"]
    offline_ctx.db.dispose()


def test_errors_map_to_http(offline_ctx: BrokerContext) -> None:
    app = create_app(offline_ctx)
    errors: dict[str, Exception] = {
        "validation": ValidationFailed("warm_desktops", "warm must be between 1 and max (10)"),
        "missing": NotFound("pool", "lab"),
        "conflict": Conflict("pool 'lab' already exists"),
        "transition": InvalidTransition("desktop cannot go from deleted to ready"),
        "forbidden": Forbidden("this needs the tenant-admin role"),
        "auth": AuthenticationFailed("unknown or expired token"),
        "race": IntegrityError("INSERT", {}, Exception("unique")),
        "platform": ProviderError("the platform said no"),
    }

    def boom(kind: str) -> None:
        raise errors[kind]

    app.add_api_route("/boom/{kind}", boom)
    with TestClient(app) as client:
        answers = {kind: client.get(f"/boom/{kind}") for kind in errors}
    assert {k: a.status_code for k, a in answers.items()} == {
        "validation": 422,
        "missing": 404,
        "conflict": 409,
        "transition": 409,
        "forbidden": 403,
        "auth": 401,
        "race": 409,
        "platform": 502,
    }
    assert answers["validation"].json() == {
        "detail": "warm must be between 1 and max (10)",
        "field": "warm_desktops",
    }
    assert answers["missing"].json() == {"detail": "pool 'lab' not found"}
    assert answers["auth"].headers["WWW-Authenticate"] == "Bearer"


def test_pool_schemas_mirror_the_domain_pool_spec() -> None:
    spec_fields = {f.name for f in dataclasses.fields(PoolSpec)}
    assert set(PoolCreate.model_fields) == spec_fields
    assert set(PoolUpdate.model_fields) == spec_fields
    assert spec_fields <= set(PoolRead.model_fields)


def test_field_paths_are_dotted() -> None:
    assert field_path(("body", "permissions", 0, "may", 2)) == "permissions[0].may[2]"
    assert field_path(("query", "limit")) == "limit"
    assert field_path(("body",)) == "body"
    assert field_path(()) == "body"
