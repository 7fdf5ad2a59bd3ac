"""Metrics of the Dramatiq actors: duration, failures and retries per actor.

:class:`ActorMetrics` is a Dramatiq middleware. It measures in the worker process and
writes that process's own file (``mesh.metrics``, the pid in its name), from a thread it
starts when the worker boots: after the fork, so each worker process has its own file
and series (label ``pid``; sum them without it). With ``METRICS_PORT`` set (one worker
container), a fork of the dramatiq master serves the container's metrics files there.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from dramatiq.middleware import Middleware
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

# A pipeline job takes seconds to minutes: the RPC buckets, then wider ones.
ACTOR_BUCKETS = (*LATENCY_BUCKETS, 30, 60, 120, 300, 600)
SKIPPED = "skipped"  # a message dropped unprocessed (too old, or already failed)


class ActorMetricSet:
    """The metric families of one worker process, on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pid = str(os.getpid())
        self.duration = Histogram(
            "mesh_actor_duration_seconds",
            "Time an actor took on a message, successful or not.",
            ["actor", "queue", "pid"],
            buckets=ACTOR_BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            "mesh_actor_failures",
            "Messages whose processing failed (error: a contract error's class, "
            "unexpected, or skipped).",
            ["actor", "queue", "error", "pid"],
            registry=registry,
        )
        self.retries = Counter(
            "mesh_actor_retries",
            "Messages processed again after a failure (Dramatiq's retries option above 0).",
            ["actor", "queue", "pid"],
            registry=registry,
        )

    def record(self, message: Any, seconds: float | None, error: str | None) -> None:
        labels = (message.actor_name, message.queue_name)
        if seconds is not None:
            self.duration.labels(*labels, self.pid).observe(seconds)
        if error is not None:
            self.failures.labels(*labels, error, self.pid).inc()
        if message.options.get("retries", 0) > 0:
            self.retries.labels(*labels, self.pid).inc()


class ActorMetrics(Middleware):
    """Times every message; writes the worker process's metrics file while it runs."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self.registry: CollectorRegistry | None = None
        self.metrics: ActorMetricSet | None = None
        self.textfile: PeriodicTextfile | None = None

    @property
    def forks(self) -> list[Any]:
        return [serve_forever] if get_settings().metrics_port is not None else []

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        # In the process that measures (a fork of the master), before any message is taken.
        self.registry = CollectorRegistry()
        self.metrics = ActorMetricSet(self.registry)
        writer = TextfileWriter(get_settings().mesh_var_dir, "dramatiq", self.registry)
        self.textfile = PeriodicTextfile(writer)
        self.textfile.write()  # the file is there as soon as the worker is
        threading.Thread(target=self.textfile.run, name="metrics-textfile", daemon=True).start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        if self.textfile is not None:
            self.textfile.stop()

    def before_process_message(self, broker: Any, message: Any) -> None:
        self._started[message.message_id] = time.perf_counter()

    def after_process_message(
        self,
        broker: Any,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        started = self._started.pop(message.message_id, None)
        seconds = None if started is None else time.perf_counter() - started
        error = None if exception is None else error_kind(exception)
        if self.metrics is not None:
            self.metrics.record(message, seconds, error)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self._started.pop(message.message_id, None)
        if self.metrics is not None:
            self.metrics.record(message, None, SKIPPED)


def serve_forever() -> int:
    """A fork of the dramatiq master: serve this machine's metrics files on METRICS_PORT."""
    settings = get_settings()
    assert settings.metrics_port is not None
    folder = metrics_dir(settings.mesh_var_dir)
    _, thread = serve_textfiles(folder, settings.metrics_host, settings.metrics_port)
    thread.join()
    return 0
