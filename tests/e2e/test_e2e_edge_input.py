"""Edge input through the real gateway and services: 4xx, never a 500 (issue 9)."""

from __future__ import annotations

import json

import pytest
import requests

pytestmark = pytest.mark.e2e


def post_json(mesh, path: str, body: object, token: str | None = None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body)  # a lone surrogate is written as the JSON escape \ud800
    return requests.post(mesh.url(path), data=data, headers=headers, timeout=15)


def test_a_lone_surrogate_in_the_login_email_is_422(mesh):
    resp = post_json(mesh, "/api/auth/login", {"email": "a\ud800@x.com", "password": "x"})
    assert resp.status_code == 422, resp.text


def test_ids_past_the_id_columns(mesh, access_token):
    assert requests.get(mesh.url("/api/products/2147483648"), timeout=15).status_code == 404
    assert requests.get(mesh.url("/api/products/2147483647"), timeout=15).status_code == 404
    body = {"product_id": 2**31, "quantity": 1}
    resp = post_json(mesh, "/api/orders", body, access_token)
    assert resp.status_code == 422, resp.text
