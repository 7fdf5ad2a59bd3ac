"""/dashboard: the admin page (live events, publishing jobs, health, analytics charts).

Plain HTML, CSS and one script, served from the package: nothing from a CDN, so the page
works with no internet. The page itself is public; every API it calls is admin only, and it
keeps the access token in memory. A strict Content-Security-Policy allows only its own files.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

from gateway.api import endpoint

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

ASSETS = Path(__file__).resolve().parent.parent / "static" / "dashboard"
SERVED = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
"""The page's files, and the media type each is served as."""
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


def protected(response: Response) -> Response:
    """``response`` with the page's security headers."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("")
@endpoint(
    "The admin dashboard page (HTML)",
    tag="dashboard",
    media="text/html",
    description="A page for administrators: it signs in with `/api/auth/login` and reads "
    "the admin APIs (events stream, jobs, reports) and `/ready`, `/metrics`.",
)
def page() -> Response:
    response = send_from_directory(ASSETS, "index.html", mimetype="text/html", max_age=0)
    return protected(response)


@bp.get("/<any(" + ", ".join(f'"{name}"' for name in sorted(SERVED)) + "):name>")
@endpoint(
    "A file of the dashboard page",
    tag="dashboard",
    media=SERVED["dashboard.js"],
    also_media=(SERVED["dashboard.css"],),
)
def asset(name: str) -> Response:
    return protected(send_from_directory(ASSETS, name, mimetype=SERVED[name], max_age=300))
