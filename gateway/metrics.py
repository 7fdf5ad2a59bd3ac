"""Prometheus request metrics, on a registry of the app's own; what /metrics exposes."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mesh import dead_letters
from mesh.metrics import TextfileCollector, metrics_dir
from mesh.settings import get_settings

UNMATCHED = "<unmatched>"
DEAD_LETTERS_KEY = "mesh.dead_letters"
log = logging.getLogger(__name__)


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


class DeadLetterCollector(Collector):
    """``mesh_dead_letters{queue}``: the messages waiting in each dead-letter queue, by the
    queue they came from (what ``mesh dlq replay`` takes). Read from RabbitMQ at most once
    per ``ttl`` seconds, however often /metrics is scraped; nothing while it does not answer.
    """

    def __init__(
        self,
        counts: Callable[[], Mapping[str, int]],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counts, self.ttl, self.clock = counts, ttl, clock
        self._lock = threading.Lock()
        self._last: Mapping[str, int] | None = None
        self._expires = 0.0

    def collect(self) -> Iterator[Metric]:
        last = self._read()
        if last is None:
            return
        family = GaugeMetricFamily(
            "mesh_dead_letters", "Messages waiting in a dead-letter queue.", labels=["queue"]
        )
        for queue, waiting in sorted(last.items()):
            family.add_metric([queue], waiting)
        yield family

    def _read(self) -> Mapping[str, int] | None:
        with self._lock:  # one reading per ttl, even under concurrent scrapes
            if self.clock() >= self._expires:
                try:
                    self._last = self.counts()
                except Exception as exc:
                    log.warning("dead-letter queues not measured: %r", exc)
                    self._last = None
                self._expires = self.clock() + self.ttl
            return self._last


def init_dead_letters(app: Flask) -> DeadLetterCollector:
    """Give ``app`` its dead-letter gauge, read from ``AMQP_URI`` every
    ``DEAD_LETTERS_CACHE_SECONDS`` at most."""
    uri = str(app.config["AMQP_URI"])
    collector = DeadLetterCollector(
        lambda: dead_letters.counts(uri, connect_timeout=2.0),
        float(app.config["DEAD_LETTERS_CACHE_SECONDS"]),
    )
    app.extensions[DEAD_LETTERS_KEY] = collector
    return collector


def exposed_registry(app_registry: CollectorRegistry, *extra: Collector) -> CollectorRegistry:
    """What /metrics shows: under several gunicorn workers (PROMETHEUS_MULTIPROC_DIR set),
    the sum over every worker; otherwise this app's own registry. Plus the metrics the
    other processes of this machine write to files (``mesh.metrics``) and ``extra``."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(app_registry)
    registry.register(TextfileCollector(metrics_dir(get_settings().mesh_var_dir)))
    for collector in extra:
        registry.register(collector)
    return registry
