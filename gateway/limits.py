"""Rate limits (flask-limiter, Redis storage): login per IP and per account, register per IP."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from flask_limiter import Limiter

LIMITED = {
    # endpoint: ((config key of the limit, key function name), ...)
    "auth.login": (("LOGIN_RATE_IP", "ip"), ("LOGIN_RATE_ACCOUNT", "account")),
    "auth.register": (("REGISTER_RATE_IP", "ip"),),
}


def client_ip() -> str:
    return request.remote_addr or "unknown"


def account_key() -> str:
    """The lowercased e-mail of the body (hashed: no address in keys or logs), else the IP."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if isinstance(email, str) and email.strip():
        digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        return f"account:{digest}"
    return f"ip:{client_ip()}"


KEY_FUNCTIONS: dict[str, Callable[[], str]] = {"ip": client_ip, "account": account_key}


def _from_config(key: str) -> Callable[[], str]:
    return lambda: str(current_app.config[key])


def init_limiter(app: Flask) -> Limiter:
    """A limiter for this app; storage and strategy from its ``RATELIMIT_*`` config."""
    return Limiter(client_ip, app=app, key_prefix="ratelimit")


def apply_limits(app: Flask, limiter: Limiter) -> None:
    """Wrap the limited views (call once their blueprints are registered)."""
    for endpoint, limits in LIMITED.items():
        view: Callable[..., Any] = app.view_functions[endpoint]
        for config_key, key_name in limits:
            view = limiter.limit(
                _from_config(config_key), key_func=KEY_FUNCTIONS[key_name], scope=key_name
            )(view)
        app.view_functions[endpoint] = view
