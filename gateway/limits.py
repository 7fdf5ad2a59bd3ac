"""Rate limits (the limits library; flask-limiter for the decorated views; Redis storage).

- every ``/api/`` route: one shared budget per client address (``API_RATE_IP``);
- on top of it, register per address, and login per address (``LOGIN_RATE_IP``), per account
  and address together (``LOGIN_RATE_ACCOUNT``), and per account (``LOGIN_RATE_ACCOUNT_TOTAL``).

The per-account ceiling stops a brute force spread over many addresses, without letting one
address lock an account out: it counts failed logins only (a 401, never a refused 429), and it
does not apply from an address the account has logged in from (:func:`remember_client`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from limits import parse
from werkzeug.exceptions import TooManyRequests

from gateway import deps
from gateway.http import parsed_json

API_PREFIX = "/api/"
API_SCOPE = "api"
API_KEY_PREFIX = "ratelimit"
KNOWN_CLIENT_SECONDS = 30 * 24 * 3600
"""How long an address the account logged in from stays exempt from its ceiling."""


def client_ip() -> str:
    """The client's address (the proxies' X-Forwarded-For only with ``TRUSTED_PROXIES``)."""
    return request.remote_addr or "unknown"


def _digest(text: str) -> str:
    # surrogatepass: a lone surrogate (valid JSON, "\ud800") is counted too, never a 500; the
    # view answers it with a 422.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def account_of(email: str) -> str:
    """The account's key: its lowercased e-mail, hashed (no address in keys or logs)."""
    return f"account:{_digest(email.strip().lower())}"


def body_account() -> str | None:
    """The account the body names; None when it names none (the view answers 400 or 422)."""
    body = parsed_json()
    email = body.get("email") if isinstance(body, dict) else None
    return account_of(email) if isinstance(email, str) and email.strip() else None


def account_key() -> str:
    """The account of the body, else the client's address."""
    return body_account() or f"ip:{client_ip()}"


def account_client_key() -> str:
    """The account of the body and the client's address together."""
    return f"{account_key()}:ip:{client_ip()}"


def _known_client_key(account: str, address: str) -> str:
    return f"login-known:{account}:{_digest(address)}"


def remember_client(email: str) -> None:
    """After a login: this address is the account's own, out of reach of its ceiling."""
    key = _known_client_key(account_of(email), client_ip())
    deps.redis().set(key, "1", ex=KNOWN_CLIENT_SECONDS)


def known_client() -> bool:
    """Whether the account of the body has logged in from this address."""
    account = body_account()
    return account is not None and bool(
        deps.redis().exists(_known_client_key(account, client_ip()))
    )


def failed_login(response: Response) -> bool:
    return response.status_code == 401


# endpoint: ((config key of the limit, key function name), ...)
LIMITED = {
    "auth.login": (
        ("LOGIN_RATE_IP", "ip"),
        ("LOGIN_RATE_ACCOUNT", "account_client"),
        ("LOGIN_RATE_ACCOUNT_TOTAL", "account"),
    ),
    "auth.register": (("REGISTER_RATE_IP", "ip"),),
}
KEY_FUNCTIONS: dict[str, Callable[[], str]] = {
    "ip": client_ip,
    "account_client": account_client_key,
    "account": account_key,
}
CEILINGS = {"account"}
"""Key functions whose limit counts failures only and spares the account's known addresses."""


def _from_config(key: str) -> Callable[[], str]:
    return lambda: str(current_app.config[key])


def outside_api() -> bool:
    """Health, readiness and metrics are not counted against the API budget."""
    return not request.path.startswith(API_PREFIX)


class ApiBudget:
    """One budget per client address shared by every /api/ route, checked before the view
    runs: the limits library's strategy on flask-limiter's own storage, called directly.

    flask-limiter's hook resolves every limit and exemption of every request, and took a
    third of a cached read's CPU under gunicorn (0.7 of 2 ms). So it is taken out, and
    flask-limiter keeps the few views it decorates (:func:`apply_limits`): their wrappers
    check their own limits. A store that does not answer fails the request (503)."""

    def __init__(self, limiter: Limiter, rate: str) -> None:
        self.strategy = limiter.limiter
        self.limit = parse(rate)

    def check(self) -> None:
        """429 with ``Retry-After`` once the client's address has spent its budget."""
        if outside_api():
            return
        address = client_ip()
        if not self.strategy.hit(self.limit, API_KEY_PREFIX, API_SCOPE, address):
            stats = self.strategy.get_window_stats(self.limit, API_KEY_PREFIX, API_SCOPE, address)
            wait = max(1, math.ceil(stats.reset_time - time.time()))
            raise TooManyRequests(f"too many requests, retry in {wait} s", retry_after=wait)


def init_limiter(app: Flask) -> Limiter:
    """The app's limiter (storage and strategy from its ``RATELIMIT_*`` config) for the
    decorated views, and the API budget (``API_RATE_IP``) in its place before every view."""
    limiter = Limiter(client_ip, app=app, key_prefix=API_KEY_PREFIX)
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    app.before_request(ApiBudget(limiter, str(app.config["API_RATE_IP"])).check)
    return limiter


def apply_limits(app: Flask, limiter: Limiter) -> None:
    """Wrap the limited views (call once their blueprints are registered)."""
    for endpoint, limits in LIMITED.items():
        view: Callable[..., Any] = app.view_functions[endpoint]
        for config_key, key_name in limits:
            ceiling = key_name in CEILINGS
            view = limiter.limit(
                _from_config(config_key),
                key_func=KEY_FUNCTIONS[key_name],
                scope=key_name,
                exempt_when=known_client if ceiling else None,
                deduct_when=failed_login if ceiling else None,
            )(view)
        app.view_functions[endpoint] = view
