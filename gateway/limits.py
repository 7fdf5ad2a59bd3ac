"""Rate limits (flask-limiter, Redis storage).

- every ``/api/`` route: one shared budget per client IP (``API_RATE_IP``);
- on top of it, login per IP and per account, register per IP.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from flask_limiter import ApplicationLimit, Limiter

from gateway.http import parsed_json

API_PREFIX = "/api/"
API_SCOPE = "api"
LIMITED = {
    # endpoint: ((config key of the limit, key function name), ...)
    "auth.login": (("LOGIN_RATE_IP", "ip"), ("LOGIN_RATE_ACCOUNT", "account")),
    "auth.register": (("REGISTER_RATE_IP", "ip"),),
}


def client_ip() -> str:
    return request.remote_addr or "unknown"


def account_key() -> str:
    """The lowercased e-mail of the body (hashed: no address in keys or logs), else the IP.

    A body that does not parse falls back to the IP key; the view answers it with a 400.
    """
    body = parsed_json()
    email = body.get("email") if isinstance(body, dict) else None
    if isinstance(email, str) and email.strip():
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        return f"account:{digest}"
    return f"ip:{client_ip()}"


KEY_FUNCTIONS: dict[str, Callable[[], str]] = {"ip": client_ip, "account": account_key}


def _from_config(key: str) -> Callable[[], str]:
    return lambda: str(current_app.config[key])


def outside_api() -> bool:
    """Health, readiness and metrics are not counted against the API budget."""
    return not request.path.startswith(API_PREFIX)


def api_limit() -> ApplicationLimit:
    """One budget per IP shared by every /api/ route (checked before the view runs)."""
    return ApplicationLimit(
        limit_provider=_from_config("API_RATE_IP"),
        key_function=client_ip,
        scope=API_SCOPE,
        exempt_when=outside_api,
    )


def init_limiter(app: Flask) -> Limiter:
    """A limiter for this app; storage and strategy from its ``RATELIMIT_*`` config."""
    return Limiter(client_ip, app=app, key_prefix="ratelimit", application_limits=[api_limit()])


def apply_limits(app: Flask, limiter: Limiter) -> None:
    """Wrap the limited views (call once their blueprints are registered)."""
    for endpoint, limits in LIMITED.items():
        view: Callable[..., Any] = app.view_functions[endpoint]
        for config_key, key_name in limits:
            view = limiter.limit(
                _from_config(config_key), key_func=KEY_FUNCTIONS[key_name], scope=key_name
            )(view)
        app.view_functions[endpoint] = view
