"""The benchmark's wrk script and its reading, against a stub of the order endpoints.

wrk is a system package (apt-get install wrk; .ci/run installs it): without it these tests
are skipped, and fail in CI.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.bench import loadgen
from tests.bench.procs import STATUS_LINE, cpu_seconds, cpu_used
from tests.conftest import require


@pytest.fixture
def wrk() -> None:
    """wrk, from the system packages: skipped without it, a failure in CI."""
    require("wrk (apt-get install wrk)", lambda: shutil.which("wrk") is not None)


needs_wrk = pytest.mark.usefixtures("wrk")


class StubOrders(BaseHTTPRequestHandler):
    """POST /api/orders: 201 with the next id; GET /api/orders/{id}: MISS once, then HIT."""

    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    keys: list[str] = []
    reads: list[int] = []

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, status: int, body: dict[str, object], cache: str | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if cache:
            self.send_header("X-Cache", cache)
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            self.keys.append(self.headers["Idempotency-Key"])
            order_id = len(self.keys)
        self.answer(201, {"id": order_id, "status": "pending"})

    def do_GET(self) -> None:
        order_id = int(self.path.rsplit("/", 1)[1])
        with self.lock:
            cache = "HIT" if order_id in self.reads else "MISS"
            self.reads.append(order_id)
        self.answer(200, {"id": order_id}, cache)


@pytest.fixture
def stub() -> Iterator[str]:
    StubOrders.keys, StubOrders.reads = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubOrders)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


SHOPPER = {"BENCH_TOKEN": "token", "BENCH_PRODUCT": "7"}


@needs_wrk
def test_post_records_every_201_with_its_time_and_a_unique_key(stub: str) -> None:
    before = time.time()
    env = {**SHOPPER, "BENCH_MODE": "post", "BENCH_RUN": "r1"}
    run = loadgen.run("post", stub, env, connections=4, seconds=1)
    assert run.answered > 0 and run.statuses == {201: run.answered}
    assert len(set(StubOrders.keys)) == len(StubOrders.keys) >= run.answered
    assert sorted(order_id for order_id, _ in run.answers) == list(range(1, run.answered + 1))
    assert all(before < at < time.time() for _, at in run.answers)
    assert run.rate > 0 and 0 < run.p50_ms <= run.p99_ms


@needs_wrk
def test_cold_reads_each_id_once_and_stops_when_they_run_out(stub: str, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"{n}\n" for n in range(1, 201)))
    env = {**SHOPPER, "BENCH_MODE": "cold", "BENCH_IDS": str(ids)}
    started = time.monotonic()
    run = loadgen.run("cold", stub, env, connections=8)
    assert time.monotonic() - started < 30  # not wrk's whole -d
    # Each id once, the first too (wrk's check of the script sends nothing); the last few may
    # be cut off in flight when the thread stops.
    assert len(StubOrders.reads) == len(set(StubOrders.reads)) >= 200 - 8
    assert {1, 2, 3} <= set(StubOrders.reads)
    assert 200 - 8 <= run.answered <= 200 and run.hits == 0 and run.misses == run.answered


@needs_wrk
def test_cached_reads_go_round_the_ids(stub: str, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n2\n3\n")
    env = {**SHOPPER, "BENCH_MODE": "cached", "BENCH_IDS": str(ids)}
    run = loadgen.run("cached", stub, env, connections=2, seconds=1)
    assert set(StubOrders.reads) == {1, 2, 3}
    assert run.misses == 3 and run.hits == run.answered - 3


def test_parse_reads_the_bench_line_and_statuses() -> None:
    values = loadgen.parse("Running 1s test\nBENCH answered=3 statuses=201:2,409:1\n")
    assert values == {"answered": "3", "statuses": "201:2,409:1"}
    assert loadgen.statuses(values["statuses"]) == {201: 2, 409: 1}
    with pytest.raises(loadgen.WrkError):
        loadgen.parse("wrk crashed")


def test_cpu_of_this_process_grows_and_a_gone_process_counts_nothing() -> None:
    me = os.getpid()
    before = {me: cpu_seconds(me), 999_999_999: 5.0}
    deadline = time.process_time() + 0.1
    while time.process_time() < deadline:
        pass
    after = {me: cpu_seconds(me), 999_999_999: cpu_seconds(999_999_999)}
    used = cpu_used({"me": [me], "gone": [999_999_999]}, before, after)
    assert used["me"] >= 0.05 and used["gone"] == 0.0


def test_status_lines_name_every_running_process_replicas_too() -> None:
    status = (
        "gateway                          RUNNING   pid 80, uptime 0:03:33\n"
        "orders:orders-0                  RUNNING   pid 81, uptime 0:03:33\n"
        "orders:orders-1                  RUNNING   pid 82, uptime 0:03:33\n"
        "mongo                            STOPPED   Not started\n"
    )
    found = dict(STATUS_LINE.findall(status))
    assert found == {"gateway": "80", "orders-0": "81", "orders-1": "82"}


def test_failures_count_wrong_statuses_socket_errors_and_timeouts() -> None:
    run = loadgen.WrkRun("post", 10, 1.0, 1.0, 2.0, {201: 7, 409: 3}, socket_errors=1, timeouts=2)
    assert run.failures(201) == 6
    assert run.describe_failures(201) == "409 x3, socket errors x1, timeouts x2"
    assert loadgen.WrkRun("get", 5, 1.0, 1.0, 2.0, {200: 5}).describe_failures(200) == ""
