"""/health (alive), /ready (every dependency answers), /metrics (Prometheus)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api import endpoint
from gateway.deps import Deps, deps
from gateway.metrics import DEAD_LETTERS_KEY, exposed_registry
from gateway.schemas import Health, Readiness

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)

READY_SERVICES = (
    "users",
    "catalog",
    "orders",
    "notifications",
    "courses",
    "content",
    "assistant",
    "analytics",
)
READY_CACHE_KEY = "mesh.ready"

ReadyAnswer = tuple[dict[str, Any], int]


class ReadyCache:
    """The last readiness answer, reused for ``ttl`` seconds.

    /ready is public and each fresh answer pings every service through the shared RPC pool:
    a burst of probes costs one round of pings per ``ttl`` per worker, not one per probe.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._answer: ReadyAnswer | None = None
        self._expires = 0.0

    def get(self, compute: Callable[[], ReadyAnswer]) -> ReadyAnswer:
        """The cached answer, or a fresh one from ``compute`` once it is stale."""
        with self._lock:  # held while computing, so concurrent probes wait for one round
            if self._answer is None or self.clock() >= self._expires:
                self._answer = compute()
                self._expires = self.clock() + self.ttl
            return self._answer


def init_ready(app: Flask, clock: Callable[[], float] = time.monotonic) -> ReadyCache:
    """Give ``app`` its own readiness cache (``READY_CACHE_SECONDS``)."""
    cache = ReadyCache(float(app.config["READY_CACHE_SECONDS"]), clock)
    app.extensions[READY_CACHE_KEY] = cache
    return cache


@bp.get("/health")
@endpoint("The process is alive", tag="health", response=Health)
def health() -> Health:
    return Health()


def _service_state(dependencies: Deps, service: str, timeout: float) -> str:
    try:
        answer = dependencies.rpc.call_with_timeout(timeout, service, "ping")
    except Exception as exc:
        log.warning("readiness: %s did not answer: %r", service, exc)
        return "unavailable"
    return "ok" if answer == service else "unexpected answer"


def _redis_state() -> str:
    try:
        deps().redis.ping()
    except Exception as exc:
        log.warning("readiness: redis did not answer: %r", exc)
        return "unavailable"
    return "ok"


@bp.get("/ready")
@endpoint(
    "Every dependency answers",
    tag="health",
    response=Readiness,
    also=((503, Readiness),),
)
def ready() -> ReadyAnswer:
    cache: ReadyCache = current_app.extensions[READY_CACHE_KEY]
    return cache.get(_readiness)


def _readiness() -> ReadyAnswer:
    """Ping every service and Redis now: ``(body, 200 or 503)``."""
    timeout = float(current_app.config["READY_TIMEOUT"])
    dependencies = deps()
    with ThreadPoolExecutor(max_workers=len(READY_SERVICES)) as pool:  # ping them all at once
        states = pool.map(lambda name: _service_state(dependencies, name, timeout), READY_SERVICES)
        services = dict(zip(READY_SERVICES, states, strict=True))
    redis_state = _redis_state()
    is_ready = redis_state == "ok" and all(state == "ok" for state in services.values())
    body = {"status": "ready" if is_ready else "unavailable", "services": services}
    return {**body, "redis": redis_state}, 200 if is_ready else 503


@bp.get("/metrics")
@endpoint("Prometheus metrics", tag="health", media="text/plain")
def metrics() -> Response:
    registry = exposed_registry(deps().metrics, current_app.extensions[DEAD_LETTERS_KEY])
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
