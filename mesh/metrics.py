"""Prometheus metrics of processes that serve no HTTP (the Nameko services).

Each process writes its own registry to ``<var>/run/metrics/<name>-<pid>.prom`` (the
node-exporter "textfile" format, written atomically); the gateway's ``/metrics`` adds
every file of a live process through :class:`TextfileCollector`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector


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
