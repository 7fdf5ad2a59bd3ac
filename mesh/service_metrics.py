"""RED metrics of a Nameko service: every entrypoint's calls, errors and latency.

:class:`ServiceMetrics` is one dependency provider per service class: nameko calls its
``worker_setup``/``worker_result`` around every worker, whatever the entrypoint (RPC,
event handler, timer), so no method is decorated. Recording is in memory; a managed
thread writes the process's file every ``WRITE_SECONDS`` (``mesh.metrics``). Labels:
``service``, ``entrypoint`` (the method), ``kind`` (``rpc``/``event``/``timer``), ``pid``
(replicas of a service each write their own series; sum them without ``pid``) and, on
errors, ``error`` (``mesh.metrics.error_kind``: a contract error's class or ``unexpected``).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc
from nameko.timer import Timer
from prometheus_client import CollectorRegistry, Counter, Histogram

from mesh.metrics import (
    LATENCY_BUCKETS,
    PeriodicTextfile,
    TextfileWriter,
    error_kind,
    metrics_dir,
    serve_textfiles,
)
from mesh.settings import get_settings

log = logging.getLogger(__name__)

LABELS = ["service", "entrypoint", "kind", "pid"]


def entrypoint_kind(entrypoint: Any) -> str:
    """``rpc``, ``event`` or ``timer``; any other entrypoint class by its own name."""
    for cls, kind in ((Rpc, "rpc"), (EventHandler, "event"), (Timer, "timer")):
        if isinstance(entrypoint, cls):
            return kind
    return type(entrypoint).__name__.lower()


class EntrypointMetrics:
    """The metric families of one service process, on ``registry``."""

    def __init__(self, service: str, registry: CollectorRegistry) -> None:
        self.service, self.pid = service, str(os.getpid())
        self.calls = Counter(
            "mesh_entrypoint_calls",
            "Workers run per entrypoint (RPC method, event handler, timer).",
            LABELS,
            registry=registry,
        )
        self.errors = Counter(
            "mesh_entrypoint_errors",
            "Workers that ended in an exception, by its kind (error).",
            [*LABELS, "error"],
            registry=registry,
        )
        self.duration = Histogram(
            "mesh_entrypoint_duration_seconds",
            "Time from a worker's setup to its result (the reply sent, for RPC).",
            LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}

    def record(self, entrypoint: str, kind: str, seconds: float, exc: BaseException | None) -> None:
        children = self._children.get((entrypoint, kind))
        if children is None:  # labels() costs more than the count itself: once per entrypoint
            labels = (self.service, entrypoint, kind, self.pid)
            children = (self.calls.labels(*labels), self.duration.labels(*labels))
            self._children[(entrypoint, kind)] = children
        children[0].inc()
        children[1].observe(seconds)
        if exc is not None:
            self.errors.labels(self.service, entrypoint, kind, self.pid, error_kind(exc)).inc()


class ServiceMetrics(DependencyProvider):
    """Times every worker of the service; its metrics file lives while the service runs.

    With ``METRICS_PORT`` set (one process per container), the process also serves its
    machine's metrics files on ``METRICS_HOST:METRICS_PORT``.
    """

    def setup(self) -> None:
        settings = get_settings()
        self.registry = CollectorRegistry()
        self.metrics = EntrypointMetrics(self.container.service_name, self.registry)
        writer = TextfileWriter(
            settings.mesh_var_dir, f"service-{self.container.service_name}", self.registry
        )
        self.textfile = PeriodicTextfile(writer)
        self._started: dict[Any, float] = {}
        self._server: Any = None

    def start(self) -> None:
        self.container.spawn_managed_thread(self.textfile.run, identifier="metrics.textfile")
        settings = get_settings()
        if settings.metrics_port is None:
            return
        folder = metrics_dir(settings.mesh_var_dir)
        try:
            self._server, _ = serve_textfiles(folder, settings.metrics_host, settings.metrics_port)
        except OSError:  # the port taken: the service still serves, unmeasured from outside
            log.exception("cannot serve metrics on port %s", settings.metrics_port)

    def stop(self) -> None:
        self.textfile.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def kill(self) -> None:
        self.stop()

    def worker_setup(self, worker_ctx: Any) -> None:
        self._started[worker_ctx] = time.perf_counter()

    def worker_result(self, worker_ctx: Any, result: Any = None, exc_info: Any = None) -> None:
        started = self._started.pop(worker_ctx, None)
        if started is None:
            return
        entrypoint = worker_ctx.entrypoint
        exc = exc_info[1] if exc_info else None
        self.metrics.record(
            entrypoint.method_name,
            entrypoint_kind(entrypoint),
            time.perf_counter() - started,
            exc,
        )

    def worker_teardown(self, worker_ctx: Any) -> None:
        self._started.pop(worker_ctx, None)  # a worker that never reached its result
