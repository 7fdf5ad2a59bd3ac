"""Bad input through the real gateway: every case has its own status code."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.e2e

REGISTER = "/api/auth/register"


def post_raw(mesh, path: str, data: bytes) -> requests.Response:
    return requests.post(
        mesh.url(path), data=data, headers={"Content-Type": "application/json"}, timeout=15
    )


def test_malformed_json_is_400(mesh):
    resp = post_raw(mesh, REGISTER, b'{"email": "broken@example.com", ')
    assert resp.status_code == 400, resp.text


def test_duplicate_email_is_409(mesh, user):
    resp = requests.post(
        mesh.url(REGISTER),
        json={"email": user.email, "password": user.password, "name": "Twin"},
        timeout=15,
    )
    assert resp.status_code == 409, resp.text


def test_wrong_types_are_422(mesh):
    resp = requests.post(
        mesh.url(REGISTER), json={"email": 12345, "password": ["x"], "name": None}, timeout=15
    )
    assert resp.status_code == 422, resp.text


def test_huge_body_is_413(mesh):
    body = b'{"email": "big@example.com", "name": "' + b"a" * (70 * 1024) + b'"}'
    resp = post_raw(mesh, REGISTER, body)
    assert resp.status_code == 413, resp.text


def me(mesh, token: str) -> requests.Response:
    return requests.get(
        mesh.url("/api/users/me"), headers={"Authorization": f"Bearer {token}"}, timeout=15
    )


def test_tampered_tokens_are_401(mesh, access_token):
    assert me(mesh, access_token).status_code == 200

    header, payload, signature = access_token.split(".")
    claims = decode(payload)
    claims["sub"] = str(claims.get("sub", "")) + "0"
    forged_payload = f"{header}.{encode(claims)}.{signature}"
    assert me(mesh, forged_payload).status_code == 401

    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    forged_signature = f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"
    assert me(mesh, forged_signature).status_code == 401


def test_alg_none_token_is_401(mesh, access_token):
    _, payload, _ = access_token.split(".")
    none_header = encode({"alg": "none", "typ": "JWT"})
    assert me(mesh, f"{none_header}.{payload}.").status_code == 401
    assert me(mesh, f"{none_header}.{payload}").status_code == 401


def decode(segment: str) -> dict[str, Any]:
    """One base64url JWT segment as JSON."""
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return claims


def encode(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
