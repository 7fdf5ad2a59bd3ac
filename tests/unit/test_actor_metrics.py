"""Metrics of the Dramatiq actors (mesh.actor_metrics), on a StubBroker and a real Worker."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from contracts.errors import Unavailable
from mesh.actor_metrics import ActorMetrics
from mesh.settings import get_settings

PID = str(os.getpid())


@pytest.fixture
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MESH_VAR_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def broker(var_dir: Path) -> Iterator[StubBroker]:
    broker = StubBroker()
    broker.add_middleware(ActorMetrics())  # as services.workers does: after Retries
    broker.emit_after("process_boot")
    yield broker
    broker.flush_all()
    broker.close()


def metrics_of(broker: StubBroker) -> ActorMetrics:
    return next(m for m in broker.middleware if isinstance(m, ActorMetrics))


def sample(broker: StubBroker, name: str, **labels: str) -> float | None:
    registry = metrics_of(broker).registry
    assert registry is not None, "the worker has not booted"
    return registry.get_sample_value(name, {"pid": PID, **labels})


def test_durations_failures_and_retries_per_actor(broker: StubBroker, var_dir: Path) -> None:
    attempts: list[str] = []

    @dramatiq.actor(broker=broker, queue_name="q", max_retries=3, min_backoff=1, max_backoff=5)
    def flaky() -> None:
        attempts.append("x")
        if len(attempts) <= 2:
            raise Unavailable("smtp is down")

    @dramatiq.actor(broker=broker, queue_name="q", max_retries=0)
    def broken() -> None:
        raise KeyError("bug")

    @dramatiq.actor(broker=broker, queue_name="q")
    def fine() -> None:
        pass

    worker = Worker(broker, worker_timeout=20)
    worker.start()
    try:
        path = var_dir / "run" / "metrics" / f"dramatiq-{PID}.prom"
        assert path.exists()  # written as the worker boots, by the process that measures
        for actor in (flaky, broken, fine, fine):
            actor.send()
        broker.join("q", fail_fast=False, timeout=30_000)
        worker.join()
    finally:
        worker.stop()
    assert not path.exists()  # removed as the worker stops

    def of(actor: str) -> dict[str, str]:
        return {"actor": actor, "queue": "q"}

    assert sample(broker, "mesh_actor_duration_seconds_count", **of("fine")) == 2
    assert sample(broker, "mesh_actor_duration_seconds_count", **of("flaky")) == 3
    assert sample(broker, "mesh_actor_failures_total", **of("flaky"), error="Unavailable") == 2
    assert sample(broker, "mesh_actor_retries_total", **of("flaky")) == 2  # the 2nd and 3rd
    assert sample(broker, "mesh_actor_failures_total", **of("broken"), error="unexpected") == 1
    assert sample(broker, "mesh_actor_retries_total", **of("broken")) is None
    assert sample(broker, "mesh_actor_failures_total", **of("fine"), error="unexpected") is None
    assert len(broker.dead_letters) == 1


def test_a_skipped_message_counts_as_a_failure(broker: StubBroker) -> None:
    @dramatiq.actor(broker=broker, queue_name="q")
    def stale() -> None:
        raise AssertionError("a message past its age limit never runs")

    stale.send_with_options(max_age=1)
    time.sleep(0.05)  # older than its 1 ms max age before any worker sees it
    worker = Worker(broker, worker_timeout=20)
    worker.start()
    try:
        broker.join("q", fail_fast=False, timeout=30_000)
        worker.join()
    finally:
        worker.stop()
    labels = {"actor": "stale", "queue": "q"}
    assert sample(broker, "mesh_actor_failures_total", **labels, error="skipped") == 1
    assert sample(broker, "mesh_actor_duration_seconds_count", **labels) is None
