"""gunicorn settings, read from the mesh Settings.

Run: ``.venv/bin/gunicorn -c gateway/gunicorn_conf.py "gateway.app:create_app()"``
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any

from gunicorn.glogging import Logger

from mesh.settings import get_settings

_settings = get_settings()

# Several workers share one set of Prometheus metrics through files in this folder; it must
# be in the environment before any worker imports prometheus_client.
_metrics_dir = _settings.mesh_var_dir.resolve() / "run" / "prometheus"
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_metrics_dir))


def on_starting(server: Any) -> None:
    """Refuse a taken port; start from empty metric files (counters begin at zero)."""
    _refuse_a_taken_port(_settings.gateway_host, _settings.gateway_port)
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    held = _settings.sse_max_total + 2 * _settings.rpc_max_in_flight
    if held >= _settings.gateway_threads:
        server.log.warning(
            "streams and one silent service may hold %d of %d threads (SSE_MAX_TOTAL + "
            "2 x RPC_MAX_IN_FLIGHT): REST can be starved; raise GATEWAY_THREADS",
            held,
            _settings.gateway_threads,
        )


def _refuse_a_taken_port(host: str, port: int) -> None:
    """With ``reuse_port`` a second gateway would share the port with the first and get half
    its connections: a trial bind without SO_REUSEPORT fails while anything listens there."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        socket.create_server((host, port), family=family).close()
    except OSError as exc:
        raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror}") from None


class AppWritesAccessLines(Logger):
    """gunicorn's logger without its access lines: the app writes one JSON line a request
    (logger ``gateway.access``). With ``logconfig_dict`` set, gunicorn would build each
    request's access record and then drop it (4 % of a cached read's CPU in the worker)."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


bind = f"{_settings.gateway_host}:{_settings.gateway_port}"
# Each worker listens on a socket of its own (SO_REUSEPORT), and the kernel spreads new
# connections over them. On one shared socket the workers race for each connection: a few
# keep-alive clients could all land in one worker while the other idled (seen: 410 against
# 830 cached reads a second from the same 8 clients).
reuse_port = True
worker_class = "gthread"
workers = _settings.gateway_workers
# One request per thread. SSE streams may hold at most SSE_MAX_TOTAL of them and a service
# that does not answer at most 2 x RPC_MAX_IN_FLIGHT (its calls and their waiters;
# gateway.streams, gateway.bulkhead): the rest always serve REST (README: "One client cannot
# starve the gateway").
threads = _settings.gateway_threads
# gthread workers heartbeat from their main loop, so a long SSE stream is not "stuck".
timeout = 60
# Open SSE streams hold a worker at shutdown; supervisord waits 20 s (stopwaitsecs).
graceful_timeout = 10
keepalive = 5
# The app logs one JSON access line per request (logger "gateway.access").
accesslog = None
logger_class = AppWritesAccessLines
errorlog = "-"
loglevel = _settings.log_level.lower()
control_socket_disable = True
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "mesh.logging.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": _settings.log_level.upper(), "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": _settings.log_level.upper(), "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
    },
}
