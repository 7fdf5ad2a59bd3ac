"""Bulkheads of the gateway's RPC calls (gateway.bulkhead), alone and inside the RpcPool over a
fake nameko proxy: a burst to a healthy service waits for a slot; a failing service's full
compartment, full waiters or an open breaker refuse at once with 503 and Retry-After; one
service's trouble never blocks another's calls, and the breaker closes again once the
service answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from nameko.exceptions import RpcTimeout

from contracts.errors import NotFound, Unavailable
from gateway import rpc_pool
from gateway.bulkhead import Breaker, Bulkheads, NoAnswer, ServiceBusy
from gateway.errors import handle_mesh_error
from gateway.rpc_pool import RpcPool
from tests.unit.gateway_helpers import FakeClock
from tests.unit.test_gateway_rpc_pool import FakeProxyRunner, FakeServiceProxy, echo


@pytest.fixture(autouse=True)
def fake_proxy(monkeypatch):
    FakeProxyRunner.instances = []
    FakeProxyRunner.answer = staticmethod(echo)
    FakeProxyRunner.start_error = None
    monkeypatch.setattr(rpc_pool, "ClusterRpcProxy", FakeProxyRunner)
    monkeypatch.setattr(rpc_pool, "ServiceProxy", FakeServiceProxy)
    return FakeProxyRunner


def silent() -> Any:
    raise NoAnswer("service orders did not answer")


def test_the_breaker_opens_after_consecutive_failures_only(clock):
    breaker = Breaker("orders", failures=3, reset_seconds=5, clock=clock)
    for _ in range(2):
        with pytest.raises(NoAnswer):
            breaker.watch(silent)
    breaker.watch(lambda: "ok")  # an answer resets the count
    for _ in range(2):
        with pytest.raises(NoAnswer):
            breaker.watch(silent)
    assert breaker.wait() == 0
    with pytest.raises(NoAnswer):
        breaker.watch(silent)
    assert breaker.wait() == 5


def test_remote_errors_are_answers_and_local_unavailable_is_not_counted(clock):
    breaker = Breaker("orders", failures=1, reset_seconds=5, clock=clock)

    def missing() -> Any:
        raise NotFound("order 9 not found")

    def exhausted() -> Any:
        raise Unavailable("RPC pool exhausted")

    with pytest.raises(NotFound):
        breaker.watch(missing)
    with pytest.raises(Unavailable):
        breaker.watch(exhausted)
    assert breaker.wait() == 0


def test_an_open_breaker_refuses_then_lets_calls_through_after_the_reset(clock):
    heads = Bulkheads(max_in_flight=4, failures=2, reset_seconds=5, clock=clock)
    calls: list[str] = []

    def call() -> str:
        calls.append("called")
        raise NoAnswer("no")

    for _ in range(2):
        with pytest.raises(NoAnswer):
            heads.call("orders", call)
    clock.now += 1.5
    with pytest.raises(ServiceBusy) as refused:
        heads.call("orders", call)
    assert refused.value.retry_after == 4  # 3.5 s left, rounded up
    assert "service orders is busy or down" in refused.value.message
    assert len(calls) == 2
    assert heads.call("catalog", lambda: "fine") == "fine"  # another service is not refused

    clock.now += 3.5
    with pytest.raises(NoAnswer):  # a trial after the reset, which fails: open again
        heads.call("orders", call)
    with pytest.raises(ServiceBusy):
        heads.call("orders", call)
    clock.now += 5
    assert heads.call("orders", lambda: "back") == "back"
    assert heads.call("orders", lambda: "closed") == "closed"


def test_a_probe_goes_through_an_open_breaker_and_its_answer_closes_it(clock):
    heads = Bulkheads(max_in_flight=4, failures=1, reset_seconds=60, clock=clock)
    with pytest.raises(NoAnswer):
        heads.call("orders", silent)
    with pytest.raises(NoAnswer):  # a failed probe is not counted, and not refused
        heads.call("orders", silent, probe=True)
    assert heads.call("orders", lambda: "orders", probe=True) == "orders"
    assert heads.call("orders", lambda: "served") == "served"


class Held:
    """Calls that stay inside their compartment until released."""

    def __init__(self) -> None:
        self.inside = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self) -> str:
        self.inside.release()
        self.release.wait(5)
        return "ok"

    def start(self, heads: Bulkheads, count: int) -> list[threading.Thread]:
        threads = [threading.Thread(target=heads.call, args=("orders", self)) for _ in range(count)]
        for thread in threads:
            thread.start()
        for _ in range(count):
            assert self.inside.acquire(timeout=5)
        return threads


def test_a_burst_to_a_healthy_service_waits_for_slots_instead_of_503():
    heads = Bulkheads(max_in_flight=2, failures=5, reset_seconds=5, slot_wait=5)
    inside = 0
    most = 0
    lock = threading.Lock()

    def answering() -> str:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        threading.Event().wait(0.05)
        with lock:
            inside -= 1
        return "ok"

    with ThreadPoolExecutor(4) as pool:  # two in flight and two waiting
        results = list(pool.map(lambda _: heads.call("orders", answering), range(4)))
    assert results == ["ok"] * 4
    assert most == 2  # never more than max_in_flight at once


def test_past_the_waiters_a_call_is_refused_at_once_and_a_freed_slot_serves_a_waiter():
    heads = Bulkheads(max_in_flight=2, failures=5, reset_seconds=5, slot_wait=5)
    held = Held()
    threads = held.start(heads, 2)
    waiters = ThreadPoolExecutor(2)
    waiting = [waiters.submit(heads.call, "orders", lambda: "waited") for _ in range(2)]
    wait_for(lambda: heads.compartment("orders")._waiting == 2)
    started = time.monotonic()
    with pytest.raises(ServiceBusy) as refused:
        heads.call("orders", lambda: "never")
    assert time.monotonic() - started < 1
    assert refused.value.retry_after == 1
    assert heads.call("catalog", lambda: "other") == "other"  # another service is not held
    held.release.set()
    assert [future.result(5) for future in waiting] == ["waited", "waited"]
    waiters.shutdown()
    for thread in threads:
        thread.join(5)
    assert heads.call("orders", lambda: "again") == "again"


def test_a_waiter_gives_up_after_slot_wait():
    heads = Bulkheads(max_in_flight=1, failures=5, reset_seconds=5, slot_wait=0.2)
    held = Held()
    threads = held.start(heads, 1)
    started = time.monotonic()
    with pytest.raises(ServiceBusy):
        heads.call("orders", lambda: "never")
    assert 0.2 <= time.monotonic() - started < 2
    held.release.set()
    for thread in threads:
        thread.join(5)


def test_once_a_call_went_unanswered_a_full_compartment_refuses_at_once():
    heads = Bulkheads(max_in_flight=2, failures=5, reset_seconds=5, slot_wait=5)
    with pytest.raises(NoAnswer):
        heads.call("orders", silent)  # failing, though the breaker is not open
    held = Held()
    threads = held.start(heads, 2)
    started = time.monotonic()
    with pytest.raises(ServiceBusy):
        heads.call("orders", lambda: "never")
    assert time.monotonic() - started < 1
    held.release.set()
    for thread in threads:
        thread.join(5)


def test_a_waiter_does_not_call_a_service_that_went_silent_while_it_waited():
    heads = Bulkheads(max_in_flight=1, failures=5, reset_seconds=5, slot_wait=5)
    entered = threading.Event()
    leave = threading.Event()

    def times_out() -> Any:
        entered.set()
        leave.wait(5)
        raise NoAnswer("service orders did not answer")

    def first_call() -> None:
        with pytest.raises(NoAnswer):
            heads.call("orders", times_out)

    first = threading.Thread(target=first_call)
    first.start()
    assert entered.wait(5)
    calls: list[str] = []
    with ThreadPoolExecutor(1) as pool:
        waiter = pool.submit(heads.call, "orders", lambda: calls.append("called"))
        wait_for(lambda: heads.compartment("orders")._waiting == 1)
        leave.set()
        with pytest.raises(ServiceBusy):
            waiter.result(5)
    first.join(5)
    assert calls == []


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "condition not met within 5 s"
        time.sleep(0.01)


def test_the_pool_fails_fast_once_a_silent_service_opened_its_breaker(clock):
    def timing_out(service, *_):
        if service == "orders":
            raise RpcTimeout(5)
        return "answer"

    FakeProxyRunner.answer = staticmethod(timing_out)
    pool = RpcPool(
        "amqp://broker/",
        bulkheads=Bulkheads(max_in_flight=4, failures=2, reset_seconds=10, clock=clock),
    )
    for _ in range(2):
        with pytest.raises(NoAnswer, match="did not answer"):
            pool.call("orders", "list_orders")
    started = len(FakeProxyRunner.instances)
    with pytest.raises(ServiceBusy, match="orders is busy or down"):
        pool.call("orders", "list_orders")
    assert len(FakeProxyRunner.instances) == started  # refused without a proxy or a call
    assert pool.call("catalog", "list_products") == "answer"


def test_a_refused_call_is_503_with_retry_after():
    app = Flask(__name__)
    with app.test_request_context():
        response = handle_mesh_error(ServiceBusy("orders", 7))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert response.get_json() == {
        "error": "unavailable",
        "message": "service orders is busy or down, retry in 7 s",
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
