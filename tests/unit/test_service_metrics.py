"""RED metrics of a Nameko service (mesh.service_metrics) and the files they travel in."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from nameko.containers import ServiceContainer, WorkerContext
from nameko.events import event_handler
from nameko.extensions import Entrypoint
from nameko.rpc import rpc
from nameko.testing.utils import get_extension
from nameko.timer import timer
from prometheus_client import CollectorRegistry, Counter

from contracts.errors import ContractViolation, NotFound
from mesh.metrics import PeriodicTextfile, TextfileWriter, error_kind, serve_textfiles
from mesh.service_metrics import ServiceMetrics
from mesh.settings import get_settings

PID = str(os.getpid())


class Shop:
    name = "shop"
    metrics = ServiceMetrics()

    @rpc
    def buy(self, what: str) -> str:
        if what == "missing":
            raise NotFound("no such thing")
        if what == "bug":
            raise KeyError(what)
        time.sleep(0.002)
        return what

    @event_handler("users", "user.registered")
    def on_registered(self, payload: dict) -> None:
        raise ContractViolation("bad payload")

    @timer(interval=60)
    def sweep(self) -> None:
        pass


@pytest.fixture
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MESH_VAR_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture
def shop(var_dir: Path) -> ServiceContainer:
    """The real container, its extensions bound but not started (no broker needed)."""
    container = ServiceContainer(Shop, config={"AMQP_URI": "memory://"})
    get_extension(container, ServiceMetrics).setup()
    return container


def sample(container: ServiceContainer, name: str, **labels: str) -> float | None:
    registry = get_extension(container, ServiceMetrics).registry
    return registry.get_sample_value(name, {"service": "shop", "pid": PID, **labels})


def call(container: ServiceContainer, method: str, *args: object) -> None:
    """Run one worker the way nameko runs every worker (an exception is its result)."""
    entrypoint = get_extension(container, Entrypoint, method_name=method)
    worker_ctx = WorkerContext(container, container.service_cls(), entrypoint, args)
    container._run_worker(worker_ctx, None)


def test_every_entrypoint_is_counted_and_timed_with_its_kind(shop: ServiceContainer) -> None:
    call(shop, "buy", "tea")
    call(shop, "buy", "milk")
    call(shop, "sweep")
    rpc_labels = {"entrypoint": "buy", "kind": "rpc"}
    assert sample(shop, "mesh_entrypoint_calls_total", **rpc_labels) == 2
    assert sample(shop, "mesh_entrypoint_duration_seconds_count", **rpc_labels) == 2
    # Each call slept 2 ms: at least 4 ms in all, and none under the 1 ms bucket.
    assert sample(shop, "mesh_entrypoint_duration_seconds_sum", **rpc_labels) >= 0.004
    bucket = sample(shop, "mesh_entrypoint_duration_seconds_bucket", **rpc_labels, le="0.001")
    assert bucket == 0
    assert sample(shop, "mesh_entrypoint_calls_total", entrypoint="sweep", kind="timer") == 1
    assert sample(shop, "mesh_entrypoint_errors_total", **rpc_labels, error="NotFound") is None


def test_errors_are_counted_by_their_contract_class_or_as_unexpected(
    shop: ServiceContainer,
) -> None:
    call(shop, "buy", "missing")
    call(shop, "buy", "bug")
    call(shop, "on_registered", {})
    rpc_labels = {"entrypoint": "buy", "kind": "rpc"}
    assert sample(shop, "mesh_entrypoint_calls_total", **rpc_labels) == 2
    assert sample(shop, "mesh_entrypoint_errors_total", **rpc_labels, error="NotFound") == 1
    assert sample(shop, "mesh_entrypoint_errors_total", **rpc_labels, error="unexpected") == 1
    event = {"entrypoint": "on_registered", "kind": "event"}
    assert sample(shop, "mesh_entrypoint_errors_total", **event, error="ContractViolation") == 1


def test_error_kinds_are_a_bounded_set() -> None:
    class Custom(NotFound):
        pass

    assert error_kind(Custom("x")) == "NotFound"  # a subclass counts as its contract class
    assert error_kind(ContractViolation("x")) == "ContractViolation"
    assert error_kind(RuntimeError("any text")) == "unexpected"


def test_the_service_writes_its_file_while_it_runs_and_removes_it_on_stop(
    shop: ServiceContainer, var_dir: Path
) -> None:
    provider = get_extension(shop, ServiceMetrics)
    call(shop, "buy", "tea")
    provider.textfile.interval = 0.05
    writer = threading.Thread(target=provider.textfile.run)
    writer.start()
    path = var_dir / "run" / "metrics" / f"service-shop-{PID}.prom"
    deadline = time.monotonic() + 5
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert 'mesh_entrypoint_calls_total{entrypoint="buy",kind="rpc"' in path.read_text()
    provider.stop()
    writer.join(timeout=5)
    assert not writer.is_alive()
    assert not path.exists()


def test_no_write_lands_after_stop(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    Counter("things", "Things.", registry=registry).inc()
    textfile = PeriodicTextfile(TextfileWriter(tmp_path, "p", registry), interval=0.01)
    textfile.write()
    assert textfile.writer.path.exists()
    textfile.stop()
    textfile.write()
    textfile.run()  # returns at once: stopped
    assert not textfile.writer.path.exists()


def test_a_process_without_a_gateway_serves_its_machine_files(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    Counter("mesh_things", "Things.", ["pid"], registry=registry).labels(PID).inc(3)
    TextfileWriter(tmp_path, "one", registry).write()
    folder = tmp_path.resolve() / "run" / "metrics"
    server, thread = serve_textfiles(folder, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    thread.join(timeout=5)
    assert f'mesh_things_total{{pid="{PID}"}} 3.0' in text


def test_mesh_metrics_serve_serves_the_machine_files(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    Counter("mesh_things", "Things.", ["pid"], registry=registry).labels(PID).inc(2)
    TextfileWriter(tmp_path, "one", registry).write()  # a live process's file: this one
    env = {**os.environ, "MESH_VAR_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "mesh.cli", "metrics-serve", "--port", "0"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as serving:
        try:
            assert serving.stdout is not None
            url = serving.stdout.readline().split()[-1]  # "serving <dir> on <url>"
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        finally:
            serving.terminate()
    assert f'mesh_things_total{{pid="{PID}"}} 2.0' in text
