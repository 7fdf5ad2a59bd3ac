"""gunicorn settings, read from the mesh Settings.

Run: ``.venv/bin/gunicorn -c gateway/gunicorn_conf.py "gateway.app:create_app()"``
"""

from __future__ import annotations

from mesh.settings import get_settings

_settings = get_settings()

bind = f"{_settings.gateway_host}:{_settings.gateway_port}"
worker_class = "gthread"
workers = _settings.gateway_workers
threads = _settings.gateway_threads
# gthread workers heartbeat from their main loop, so a long SSE stream is not "stuck".
timeout = 60
# Open SSE streams hold a worker at shutdown; supervisord waits 20 s (stopwaitsecs).
graceful_timeout = 10
keepalive = 5
# The app logs one JSON access line per request (logger "gateway.access").
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
control_socket_disable = True
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "mesh.logging.JsonFormatter"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    },
    "root": {"level": _settings.log_level.upper(), "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": _settings.log_level.upper(), "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
    },
}
