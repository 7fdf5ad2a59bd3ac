"""``mesh wait-ready`` says what it is waiting for while it waits.

It used to stay silent for up to two minutes, then print the last /ready body.
"""

from __future__ import annotations

import functools
import io
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mesh import cli, readiness
from mesh.settings import Settings

NOT_READY: dict[str, object] = {
    "status": "unavailable",
    "services": {"users": "ok", "content": "unavailable", "assistant": "unavailable"},
    "redis": "ok",
}
READY: dict[str, object] = {
    "status": "ready",
    "services": {"users": "ok", "content": "ok"},
    "redis": "ok",
}


class Gateway(ThreadingHTTPServer):
    """Answers GET /ready with the queued (status, body) pairs, then with the last one."""

    def __init__(self, answers: list[tuple[int, dict[str, object]]]) -> None:
        super().__init__(("127.0.0.1", 0), ReadyHandler)
        self.answers = answers

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def next_answer(self) -> tuple[int, dict[str, object]]:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class ReadyHandler(BaseHTTPRequestHandler):
    server: Gateway

    def do_GET(self) -> None:
        status, body = self.server.next_answer()
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(answers: list[tuple[int, dict[str, object]]]) -> Iterator[Gateway]:
    gateway = Gateway(answers)
    thread = threading.Thread(target=gateway.serve_forever, daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        gateway.shutdown()
        gateway.server_close()
        thread.join()


@pytest.fixture
def starting() -> Iterator[Gateway]:
    """A gateway whose /ready says 503 three times, then 200."""
    yield from serve([(503, NOT_READY)] * 3 + [(200, READY)])


class Clock:
    """A monotonic clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_it_names_the_services_that_do_not_answer(starting: Gateway) -> None:
    out, clock = io.StringIO(), Clock()
    last = readiness.wait(
        lambda: readiness.probe(starting.url), 60, out, clock=clock, sleep=clock.sleep
    )
    assert last.ready
    assert out.getvalue().splitlines() == ["waiting for: content, assistant (unavailable) [0s]"]


def test_it_repeats_what_it_waits_for_every_few_seconds() -> None:
    out, clock = io.StringIO(), Clock()
    stuck = readiness.Probe(ready=False, waiting_for="redis (unavailable)")
    last = readiness.wait(lambda: stuck, 12, out, every=5, clock=clock, sleep=clock.sleep)
    assert last == stuck
    assert out.getvalue().splitlines() == [
        "waiting for: redis (unavailable) [0s]",
        "waiting for: redis (unavailable) [5s]",
        "waiting for: redis (unavailable) [10s]",
    ]


def test_a_change_is_shown_at_once() -> None:
    out, clock = io.StringIO(), Clock()
    probes = iter(
        [
            readiness.Probe(ready=False, waiting_for="the gateway at x (refused)"),
            readiness.Probe(ready=False, waiting_for="content (unavailable)"),
            readiness.Probe(ready=True),
        ]
    )
    assert readiness.wait(lambda: next(probes), 60, out, clock=clock, sleep=clock.sleep).ready
    assert out.getvalue().splitlines() == [
        "waiting for: the gateway at x (refused) [0s]",
        "waiting for: content (unavailable) [1s]",
    ]


def test_no_gateway_is_named_as_such() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    probe = readiness.probe(url, timeout=2)
    assert not probe.ready
    assert probe.waiting_for.startswith(f"the gateway at {url} (")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"services": {"users": "ok"}, "redis": "unavailable"}', "redis (unavailable)"),
        (
            b'{"services": {"a": "unavailable", "b": "unexpected answer"}, "redis": "ok"}',
            "a (unavailable); b (unexpected answer)",
        ),
        (b"<html>Bad Gateway</html>", "the gateway (an unexpected /ready answer)"),
        (b"[1, 2]", "the gateway (an unexpected /ready answer)"),
    ],
)
def test_missing_reads_the_ready_body(body: bytes, expected: str) -> None:
    assert readiness.missing(body) == expected


def on_a_fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's waits run on a Clock: no real second passes."""
    clock = Clock()
    wait = functools.partial(readiness.wait, clock=clock, sleep=clock.sleep)
    monkeypatch.setattr(readiness, "wait", wait)


def test_the_command_shows_progress_then_ready(
    starting: Gateway, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    on_a_fake_clock(monkeypatch)
    port = int(starting.url.rsplit(":", 1)[1])
    assert cli.wait_ready(Settings(gateway_port=port), timeout=60) == 0
    out = capsys.readouterr().out
    assert "waiting for: content, assistant (unavailable)" in out
    assert out.endswith(f"mesh ready at {starting.url}\n")


def test_the_command_says_what_it_still_waited_for_at_the_timeout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    on_a_fake_clock(monkeypatch)
    for gateway in serve([(503, NOT_READY)]):
        port = int(gateway.url.rsplit(":", 1)[1])
        assert cli.wait_ready(Settings(gateway_port=port), timeout=10) == 1
    err = capsys.readouterr().err
    assert err == "mesh not ready after 10s: waiting for content, assistant (unavailable)\n"
