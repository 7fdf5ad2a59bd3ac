"""/health (alive), /ready (every dependency answers), /metrics (Prometheus)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.deps import Deps, deps
from gateway.metrics import exposed_registry

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)

READY_SERVICES = ("users", "catalog", "orders", "notifications")


@bp.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


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
def ready() -> tuple[dict[str, Any], int]:
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
def metrics() -> Response:
    return Response(
        generate_latest(exposed_registry(deps().metrics)), content_type=CONTENT_TYPE_LATEST
    )
