"""/api/openapi.json and a small docs page at /api/docs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, url_for

from gateway.openapi import document

bp = Blueprint("docs", __name__, url_prefix="/api")

SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5"
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>The mesh gateway: API</title>
  <link rel="stylesheet" href="{cdn}/swagger-ui.css">
</head>
<body>
  <p>Raw OpenAPI document: <a href="{spec}">{spec}</a>
     (the viewer below needs the Swagger UI CDN; offline, read the raw document).</p>
  <div id="swagger-ui"></div>
  <script src="{cdn}/swagger-ui-bundle.js"></script>
  <script>
    if (window.SwaggerUIBundle) {{
      window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui"}});
    }}
  </script>
</body>
</html>
"""


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return document()


@bp.get("/docs")
def docs() -> Response:
    page = PAGE.format(cdn=SWAGGER_UI, spec=url_for("docs.openapi"))
    return Response(page, mimetype="text/html")
