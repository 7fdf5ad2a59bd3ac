"""/api/openapi.json, and the docs page at /api/docs (Swagger UI from the installed
swagger-ui-py package: no CDN, so it works with no internet)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import swagger_ui
from flask import Blueprint, Response, current_app, send_from_directory, url_for

from gateway.api import endpoint
from gateway.openapi import document

bp = Blueprint("docs", __name__, url_prefix="/api")

ASSETS = Path(swagger_ui.__file__).parent / "static"
SERVED = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
"""The files of the docs page, and the media type each is served as."""
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>The mesh gateway: API</title>
  <link rel="icon" href="{assets}/favicon-32x32.png">
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"><p>Raw OpenAPI document: <a href="{spec}">{spec}</a></p></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui"}});
  </script>
</body>
</html>
"""


@bp.get("/openapi.json")
@endpoint("This document", tag="docs")
def openapi() -> dict[str, Any]:
    return document(current_app)


@bp.get("/docs")
@endpoint("Human-readable API docs (Swagger UI)", tag="docs", media="text/html")
def docs() -> Response:
    assets = url_for("docs.openapi").rsplit("/", 1)[0] + "/docs/assets"
    page = PAGE.format(assets=assets, spec=url_for("docs.openapi"))
    return Response(page, mimetype="text/html")


@bp.get("/docs/assets/<any(" + ", ".join(f'"{name}"' for name in sorted(SERVED)) + "):name>")
@endpoint(
    "A file of the docs page",
    tag="docs",
    media=SERVED["swagger-ui.css"],
    also_media=(SERVED["swagger-ui-bundle.js"], SERVED["favicon-32x32.png"]),
)
def asset(name: str) -> Response:
    return send_from_directory(ASSETS, name, mimetype=SERVED[name], max_age=86400)
