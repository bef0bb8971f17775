"""Prometheus metrics and request ids (issue 5 groundwork: metrics and logs)."""

from __future__ import annotations

import json
import logging

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from hotdesk.api.app import create_app
from hotdesk.observability.logs import JsonFormatter
from hotdesk.services import claims
from tests.support import World


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``, or None if absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


async def test_metrics_report_claims_desktops_queue_and_provider_calls(world: World) -> None:
    alice, bob = world.user("alice"), world.user("bob")
    world.pool("lab", warm=1, max=1, users=[alice, bob])
    await world.reconciler.converge()
    client = TestClient(create_app(world.ctx))
    before = (
        _sample(
            client.get("/metrics").text, "hotdesk_claim_seconds_count", outcome="assigned_ready"
        )
        or 0.0
    )
    assert claims.connect(world.ctx, alice, "lab").state.value == "connected"
    assert claims.connect(world.ctx, bob, "lab").state.value == "waiting"

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    labels = {"tenant": "default", "pool": "lab"}
    assert _sample(text, "hotdesk_desktops", **labels, state="connected") == 1
    assert _sample(text, "hotdesk_queue_length", **labels) == 1
    after = _sample(text, "hotdesk_claim_seconds_count", outcome="assigned_ready")
    assert after == before + 1
    assert (
        _sample(text, "hotdesk_provider_call_seconds_count", kind="sim", method="create_desktop")
        or 0
    ) >= 1
    assert (_sample(text, "hotdesk_reconcile_pass_seconds_count") or 0) >= 1


async def test_provisioning_failures_are_counted(world: World) -> None:
    world.pool("flaky", warm=1, max=1)
    client = TestClient(create_app(world.ctx))
    before = (
        _sample(client.get("/metrics").text, "hotdesk_provisioning_failures_total", pool="flaky")
        or 0.0
    )
    world.platform.fail_next_creates = 1
    await world.reconciler.run_pass()
    await world.reconciler.settle()
    text = client.get("/metrics").text
    assert _sample(text, "hotdesk_provisioning_failures_total", pool="flaky") == before + 1
    assert (
        _sample(text, "hotdesk_provider_call_errors_total", kind="sim", method="create_desktop")
        or 0
    ) >= 1


def test_every_response_carries_a_request_id_and_logs_name_it(world: World) -> None:
    client = TestClient(create_app(world.ctx))
    given = client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces!"})
    assert made.headers["x-request-id"] != "bad id with spaces!"
    assert len(made.headers["x-request-id"]) == 16


def test_json_log_lines_carry_ids_and_errors() -> None:
    record = logging.LogRecord(
        "hotdesk.reconciler", logging.ERROR, __file__, 1, "create of %s failed", ("lab-1",), None
    )
    record.desktop_id = "d1"
    record.request_id = "r1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "create of lab-1 failed"
    assert (line["level"], line["desktop_id"], line["request_id"]) == ("error", "d1", "r1")
    assert line["logger"] == "hotdesk.reconciler" and line["time"].endswith("+00:00")
