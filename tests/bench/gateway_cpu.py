"""Benchmark: the gateway's own CPU per request, in process, with no HTTP server around it.

Run against a running mesh (``make run BENCH=1``): ``make bench-gateway``. It places one
order through the mesh, then calls the gateway's WSGI app directly in this process, one
request at a time: ``GET /health`` and ``GET /api/orders/{id}`` answered from the cache (the
rate limit, the token and revocation checks and the cache read, against the real Redis).
It prints the CPU per request (``time.process_time``), best and median of ``--runs`` runs of
``--requests`` each. gunicorn adds its own per-request cost on top (about 0.4 ms here).
With ``--idle-ms``, requests are that far apart, as under a server, where each waits on the
network and the other processes run in between: the same work then costs more CPU (the
processor's caches have been used by others meanwhile).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.test import EnvironBuilder

from mesh.settings import get_settings
from tests.bench.common import Client, prepare


def caller(app: Flask, path: str, headers: dict[str, str]) -> Callable[[], str]:
    """One request to ``app``, its status returned."""
    environ = EnvironBuilder(path=path, headers=headers).get_environ()
    environ["REMOTE_ADDR"] = "127.0.0.1"
    status: list[str] = []

    def start_response(line: str, _headers: Any, _exc: Any = None) -> None:
        status.append(line)

    def call() -> str:
        body = app(dict(environ), start_response)
        for _ in body:
            pass
        getattr(body, "close", lambda: None)()
        return status.pop()

    return call


def cpu_ms(
    call: Callable[[], str], requests: int, runs: int, idle: float = 0.0
) -> tuple[float, float]:
    """(best, median) CPU milliseconds per request over ``runs`` runs, ``idle`` seconds apart;
    every answer a 200."""
    for _ in range(200):
        call()

    def paced() -> str:
        time.sleep(idle)
        return call()

    one = paced if idle else call
    per_run = []
    for _ in range(runs):
        started = time.process_time()
        answers = [one() for _ in range(requests)]
        per_run.append((time.process_time() - started) * 1000 / requests)
        refused = [status for status in answers if not status.startswith("200")]
        assert not refused, f"{len(refused)} answers were not 200: {refused[0]}"
    return min(per_run), statistics.median(per_run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--idle-ms",
        type=float,
        default=0.0,
        help="pause between requests, as a server waits on the network between them",
    )
    args = parser.parse_args()
    settings = get_settings()
    headers, _, product_id = prepare(settings, settings.gateway_url)
    body = {"product_id": product_id, "quantity": 1}
    order = Client(settings.gateway_url, headers).call("POST", "/api/orders", 201, body)
    # The app's metrics go to a scratch folder, and its access lines are not written.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bench-gateway-")
    from gateway.app import create_app

    # The rate limit is checked as always, with room for every request of the run.
    app = create_app({"API_RATE_IP": "1000000/minute"})
    logging.getLogger("gateway.access").disabled = True
    print(
        f"gateway CPU per request, in process: best and median of {args.runs} x {args.requests}, "
        f"{args.idle_ms} ms apart"
    )
    for path in ("/health", f"/api/orders/{order['id']}"):
        call = caller(app, path, headers)
        best, median = cpu_ms(call, args.requests, args.runs, args.idle_ms / 1000)
        print(f"  GET {path:28s} best {best:6.3f} ms  median {median:6.3f} ms")


if __name__ == "__main__":
    main()
