"""Prometheus request metrics, on a registry of the app's own."""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess

from mesh.metrics import TextfileCollector, metrics_dir
from mesh.settings import get_settings

UNMATCHED = "<unmatched>"


def endpoint_label() -> str:
    """The route rule, never the raw path (a bounded label set)."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def init_metrics(app: Flask) -> CollectorRegistry:
    """Count and time every request of ``app``; return the registry to expose."""
    registry = CollectorRegistry()
    requests = Counter(
        "gateway_requests",
        "HTTP requests handled by the gateway.",
        ["method", "endpoint", "status"],
        registry=registry,
    )
    latency = Histogram(
        "gateway_request_duration_seconds",
        "Time to produce the response (headers, for streams).",
        ["method", "endpoint"],
        registry=registry,
    )

    @app.before_request
    def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def record(response: Response) -> Response:
        endpoint = endpoint_label()
        requests.labels(request.method, endpoint, str(response.status_code)).inc()
        started = g.get("metrics_started")
        if started is not None:
            latency.labels(request.method, endpoint).observe(time.perf_counter() - started)
        return response

    return registry


def exposed_registry(app_registry: CollectorRegistry) -> CollectorRegistry:
    """What /metrics shows: under several gunicorn workers (PROMETHEUS_MULTIPROC_DIR set),
    the sum over every worker; otherwise this app's own registry. Plus the metrics the
    services write to files (their outbox relays: ``mesh.metrics``)."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(app_registry)
    registry.register(TextfileCollector(metrics_dir(get_settings().mesh_var_dir)))
    return registry
