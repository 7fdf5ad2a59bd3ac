"""RpcPool over a fake ClusterRpcProxy and ServiceProxy: pooling, context, failures (no I/O)."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
from nameko.constants import NON_PERSISTENT
from nameko.exceptions import RpcTimeout, UnknownService

from contracts.errors import NotFound, Unavailable
from gateway import rpc_pool
from gateway.rpc_pool import RpcPool
from mesh.context import set_correlation_id


class FakeProxyRunner:
    """Stands in for nameko's ClusterRpcProxy: start() gives the cluster proxy."""

    instances: list[FakeProxyRunner] = []
    answer: Any = None  # callable(service, method, args, kwargs, runner) -> result
    start_error: BaseException | None = None

    def __init__(self, config: dict[str, Any], timeout: float | None = None) -> None:
        self.config = config
        self._worker_ctx = SimpleNamespace(data={})
        connection = SimpleNamespace(connected=False)
        consumer = SimpleNamespace(timeout=timeout, stopped=True, connection=connection)
        self._reply_listener = SimpleNamespace(queue_consumer=consumer, runner=self)
        self.stopped = False
        self.seen: list[tuple[str, str, dict[str, Any], float, dict[str, Any]]] = []
        FakeProxyRunner.instances.append(self)

    @property
    def consumer(self) -> Any:
        return self._reply_listener.queue_consumer

    def start(self) -> Any:
        if FakeProxyRunner.start_error is not None:
            raise FakeProxyRunner.start_error
        self.consumer.stopped = False
        self.consumer.connection.connected = True
        return object()  # the pool calls through its own ServiceProxy

    def stop(self) -> None:
        self.stopped = True
        self.consumer.stopped = True


class FakeServiceProxy:
    """Stands in for nameko's ServiceProxy: records what a real one would publish."""

    def __init__(self, worker_ctx: Any, service: str, reply_listener: Any, **options: Any) -> None:
        self.runner: FakeProxyRunner = reply_listener.runner
        assert worker_ctx is self.runner._worker_ctx
        self.service, self.options = service, options

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            runner = self.runner
            context = dict(runner._worker_ctx.data)
            runner.seen.append(
                (self.service, method, context, runner.consumer.timeout, self.options)
            )
            return FakeProxyRunner.answer(self.service, method, args, kwargs, runner)

        return call


def echo(service, method, args, kwargs, runner):
    return {"service": service, "method": method, "args": list(args), "kwargs": kwargs}


@pytest.fixture(autouse=True)
def fake_proxy(monkeypatch):
    FakeProxyRunner.instances = []
    FakeProxyRunner.answer = staticmethod(echo)
    FakeProxyRunner.start_error = None
    monkeypatch.setattr(rpc_pool, "ClusterRpcProxy", FakeProxyRunner)
    monkeypatch.setattr(rpc_pool, "ServiceProxy", FakeServiceProxy)
    set_correlation_id(None)
    yield FakeProxyRunner
    set_correlation_id(None)


def test_the_pool_connects_lazily_and_reuses_one_proxy():
    pool = RpcPool("amqp://broker/", size=4, timeout=3.0)
    assert FakeProxyRunner.instances == []
    assert pool.call("users", "get_user", 7) == {
        "service": "users",
        "method": "get_user",
        "args": [7],
        "kwargs": {},
    }
    pool.call("users", "ping")
    assert len(FakeProxyRunner.instances) == 1
    runner = FakeProxyRunner.instances[0]
    # amqp:// is spelled pyamqp://: kombu then skips its librabbitmq import probe
    assert runner.config == {"AMQP_URI": "pyamqp://broker/", "serializer": "json"}
    assert runner.seen[0][3] == 3.0


def test_the_correlation_id_goes_into_the_context_data():
    pool = RpcPool("amqp://broker/")
    set_correlation_id("req-1")
    pool.call("users", "ping")
    set_correlation_id(None)
    pool.call("users", "ping")
    seen = FakeProxyRunner.instances[0].seen
    assert seen[0][2] == {"correlation_id": "req-1"}
    assert seen[1][2] == {}


def test_a_timeout_drops_the_proxy_and_raises_unavailable():
    def slow(*_):
        raise RpcTimeout(1)

    FakeProxyRunner.answer = staticmethod(slow)
    pool = RpcPool("amqp://broker/")
    with pytest.raises(Unavailable, match="service users did not answer"):
        pool.call("users", "ping")
    assert FakeProxyRunner.instances[0].stopped
    FakeProxyRunner.answer = staticmethod(echo)
    pool.call("users", "ping")
    assert len(FakeProxyRunner.instances) == 2


def test_a_lost_connection_drops_the_proxy():
    def broken(*_):
        raise ConnectionResetError("broker went away")

    FakeProxyRunner.answer = staticmethod(broken)
    pool = RpcPool("amqp://broker/")
    with pytest.raises(Unavailable):
        pool.call("users", "ping")
    assert FakeProxyRunner.instances[0].stopped


def test_a_remote_mesh_error_passes_through_and_keeps_the_proxy():
    def missing(*_):
        raise NotFound("user 9 not found")

    FakeProxyRunner.answer = staticmethod(missing)
    pool = RpcPool("amqp://broker/")
    with pytest.raises(NotFound):
        pool.call("users", "get_user", 9)
    FakeProxyRunner.answer = staticmethod(echo)
    pool.call("users", "ping")
    assert len(FakeProxyRunner.instances) == 1
    assert not FakeProxyRunner.instances[0].stopped


def test_an_unknown_service_is_unavailable():
    def unknown(service, *_):
        raise UnknownService(service)

    FakeProxyRunner.answer = staticmethod(unknown)
    with pytest.raises(Unavailable, match="not running"):
        RpcPool("amqp://broker/").call("catalog", "ping")


def test_an_unreachable_broker_is_unavailable():
    FakeProxyRunner.start_error = ConnectionRefusedError(111, "refused")
    with pytest.raises(Unavailable, match="broker unreachable"):
        RpcPool("amqp://broker/").call("users", "ping")


def test_a_disconnected_idle_proxy_is_replaced():
    pool = RpcPool("amqp://broker/")
    pool.call("users", "ping")
    FakeProxyRunner.instances[0].consumer.connection.connected = False
    pool.call("users", "ping")
    assert len(FakeProxyRunner.instances) == 2
    assert FakeProxyRunner.instances[0].stopped


def test_the_timeout_bounds_the_reply_wait_and_the_request_life_and_requests_are_transient():
    pool = RpcPool("amqp://broker/", timeout=5.0)
    pool.call_with_timeout(0.5, "users", "ping")
    pool.call("users", "ping")
    seen = FakeProxyRunner.instances[0].seen
    assert [s[3] for s in seen] == [0.5, 5.0]
    transient = {"delivery_mode": NON_PERSISTENT}
    assert [s[4] for s in seen] == [
        {"expiration": 0.5, **transient},
        {"expiration": 5.0, **transient},
    ]


def test_threads_share_at_most_size_proxies():
    release = threading.Event()
    inside = threading.Semaphore(0)

    def blocking(*_):
        inside.release()
        release.wait(5)
        return "ok"

    FakeProxyRunner.answer = staticmethod(blocking)
    pool = RpcPool("amqp://broker/", size=2, timeout=5.0)
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(pool.call("users", "ping")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    assert inside.acquire(timeout=5) and inside.acquire(timeout=5)
    assert len(FakeProxyRunner.instances) == 2
    release.set()
    for thread in threads:
        thread.join(5)
    assert results == ["ok"] * 4
    assert len(FakeProxyRunner.instances) == 2


def test_an_exhausted_pool_is_unavailable_after_the_timeout():
    release = threading.Event()
    inside = threading.Event()

    def blocking(*_):
        inside.set()
        release.wait(5)
        return "ok"

    FakeProxyRunner.answer = staticmethod(blocking)
    pool = RpcPool("amqp://broker/", size=1, timeout=0.05)
    holder = threading.Thread(target=pool.call, args=("users", "ping"))
    holder.start()
    assert inside.wait(5)
    with pytest.raises(Unavailable, match="pool exhausted"):
        pool.call("users", "ping")
    release.set()
    holder.join(5)


def test_close_stops_idle_proxies_and_refuses_calls():
    pool = RpcPool("amqp://broker/")
    pool.call("users", "ping")
    pool.close()
    assert FakeProxyRunner.instances[0].stopped
    with pytest.raises(Unavailable):
        pool.call("users", "ping")
