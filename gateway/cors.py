"""Cross-origin calls from the browser origins in CORS_ORIGINS (flask-cors); none by default."""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

# What a browser client sends and may read beyond the CORS-safelisted headers.
ALLOW_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID")
EXPOSE_HEADERS = ("X-Cache", "Location", "Retry-After", "Idempotency-Key")
PREFLIGHT_MAX_AGE = 600


def init_cors(app: Flask) -> None:
    """Answer CORS (preflights included) on ``/api/`` for ``app.config["CORS_ORIGINS"]``.

    Without origins nothing is added: same-origin callers see no difference, and a browser
    refuses a cross-origin answer. Tokens travel in the Authorization header, never in
    cookies, so credentials are not allowed.
    """
    origins = list(app.config.get("CORS_ORIGINS") or [])
    if not origins:
        return
    CORS(
        app,
        resources={r"/api/*": {"origins": origins}},
        allow_headers=list(ALLOW_HEADERS),
        expose_headers=list(EXPOSE_HEADERS),
        supports_credentials=False,
        max_age=PREFLIGHT_MAX_AGE,
    )
