"""Prometheus counters and histograms of one broker process (no hotdesk imports: any layer may
record into them). Gauges read from the database live in ``services.metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()

CLAIM_SECONDS = Histogram(
    "hotdesk_claim_seconds",
    "Time to answer a Connect (claim), by outcome.",
    ["outcome"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
PROVISIONING_FAILURES = Counter(
    "hotdesk_provisioning_failures_total",
    "Desktop creations the platform refused or that failed, by pool.",
    ["pool"],
    registry=REGISTRY,
)
RECONCILE_PASS_SECONDS = Histogram(
    "hotdesk_reconcile_pass_seconds",
    "Duration of a full reconcile pass over every pool.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
PROVIDER_CALL_SECONDS = Histogram(
    "hotdesk_provider_call_seconds",
    "Latency of platform calls, by driver kind and method.",
    ["kind", "method"],
    registry=REGISTRY,
)
PROVIDER_CALL_ERRORS = Counter(
    "hotdesk_provider_call_errors_total",
    "Platform calls that failed or timed out, by driver kind and method.",
    ["kind", "method"],
    registry=REGISTRY,
)
