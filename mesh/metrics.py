"""Prometheus metrics of processes that serve no HTTP (the Nameko services, the workers).

Each process writes its own registry to ``<var>/run/metrics/<name>-<pid>.prom`` (the
node-exporter "textfile" format, written atomically); the gateway's ``/metrics`` adds
every file of a live process through :class:`TextfileCollector`. Where a process has no
gateway beside it (one container per process), :func:`serve_textfiles` serves the same
files on ``METRICS_PORT``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from contracts.errors import REMOTE_ERRORS

log = logging.getLogger(__name__)

WRITE_SECONDS = 5.0  # how often a process rewrites its metrics file
# Latency buckets, seconds: fine enough for a millisecond RPC, wide enough for a slow one.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
UNEXPECTED = "unexpected"


def error_kind(exc: BaseException) -> str:
    """A bounded label for a failure: the ``contracts.errors`` class of an expected error
    (``NotFound``, ``Unavailable``...), else ``unexpected`` (a bug, or a driver error)."""
    for cls in type(exc).__mro__:
        if cls in REMOTE_ERRORS:
            return cls.__name__
    return UNEXPECTED


def metrics_dir(var_dir: Path) -> Path:
    return var_dir.resolve() / "run" / "metrics"


class TextfileWriter:
    """Writes one process's registry to its file; removes the file when the process stops."""

    def __init__(self, var_dir: Path, name: str, registry: CollectorRegistry) -> None:
        self.path = metrics_dir(var_dir) / f"{name}-{os.getpid()}.prom"
        self.registry = registry

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(self.path), self.registry)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class PeriodicTextfile:
    """Rewrites a :class:`TextfileWriter`'s file every ``interval`` seconds from the thread
    that calls :meth:`run` (a nameko managed thread, or a plain one), until :meth:`stop`,
    which removes the file: no write can land after it."""

    def __init__(self, writer: TextfileWriter, interval: float = WRITE_SECONDS) -> None:
        self.writer = writer
        self.interval = interval
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._failing = False

    def run(self) -> None:
        self.write()
        while not self._stopped.wait(self.interval):
            self.write()

    def write(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            try:
                self.writer.write()
            except Exception:  # a metrics file must never stop the process it describes
                if not self._failing:  # once per streak of failures, not every interval
                    log.warning("cannot write %s", self.writer.path, exc_info=True)
                self._failing = True
            else:
                self._failing = False

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            self.writer.remove()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class TextfileCollector(Collector):
    """Every metric family written by the live processes of one var dir, merged by name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for path in sorted(self.folder.glob("*-*.prom")):
            pid = path.stem.rsplit("-", 1)[-1]
            if not pid.isdigit() or not _pid_alive(int(pid)):
                continue  # a process that died without removing its file
            try:
                text = path.read_text()
            except OSError:
                continue
            for family in text_string_to_metric_families(text):
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                merged.samples.extend(family.samples)
        yield from families.values()


def serve_textfiles(folder: Path, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve every live process's file in ``folder`` as Prometheus text on ``host:port``,
    from a daemon thread; return the server (``shutdown()`` stops it) and that thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TextfileCollector(folder))
    return start_http_server(port, host, registry)
