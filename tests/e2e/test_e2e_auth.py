"""Register, log in, refresh (with rotation), read the profile, log out: through the gateway."""

from __future__ import annotations

import uuid

import pytest
import requests

pytestmark = pytest.mark.e2e


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_register_login_refresh_logout(mesh):
    email = f"u{uuid.uuid4().hex[:10]}@example.com"
    resp = requests.post(
        mesh.url("/api/auth/register"),
        json={"email": email, "password": "correct-horse-battery-9", "name": "Ada Lovelace"},
        timeout=15,
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert {"id", "email", "name", "created_at"} <= created.keys()
    assert created["email"] == email
    assert created["name"] == "Ada Lovelace"
    assert "password" not in created and "password_hash" not in created

    resp = requests.post(
        mesh.url("/api/auth/login"),
        json={"email": email, "password": "correct-horse-battery-9"},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    first = resp.json()
    assert {"access_token", "refresh_token", "token_type", "expires_in"} <= first.keys()
    assert first["token_type"].lower() == "bearer"
    assert isinstance(first["expires_in"], int) and first["expires_in"] > 0

    resp = requests.post(
        mesh.url("/api/auth/refresh"), headers=bearer(first["refresh_token"]), timeout=15
    )
    assert resp.status_code == 200, resp.text
    second = resp.json()
    assert {"access_token", "refresh_token"} <= second.keys()
    assert second["refresh_token"] != first["refresh_token"]

    resp = requests.get(
        mesh.url("/api/users/me"), headers=bearer(second["access_token"]), timeout=15
    )
    assert resp.status_code == 200, resp.text
    me = resp.json()
    assert me["id"] == created["id"]
    assert me["email"] == email

    # The old refresh token was rotated out: replaying it is refused, and (reuse detection)
    # revokes every token of that login, the new pair included.
    resp = requests.post(
        mesh.url("/api/auth/refresh"), headers=bearer(first["refresh_token"]), timeout=15
    )
    assert resp.status_code == 401, resp.text
    resp = requests.post(
        mesh.url("/api/auth/refresh"), headers=bearer(second["refresh_token"]), timeout=15
    )
    assert resp.status_code == 401, resp.text

    # A new login, then logout: its access token stops working at once.
    third = requests.post(
        mesh.url("/api/auth/login"),
        json={"email": email, "password": "correct-horse-battery-9"},
        timeout=15,
    ).json()
    resp = requests.get(
        mesh.url("/api/users/me"), headers=bearer(third["access_token"]), timeout=15
    )
    assert resp.status_code == 200, resp.text

    resp = requests.post(
        mesh.url("/api/auth/logout"), headers=bearer(third["access_token"]), timeout=15
    )
    assert resp.status_code in (200, 204), resp.text

    resp = requests.get(
        mesh.url("/api/users/me"), headers=bearer(third["access_token"]), timeout=15
    )
    assert resp.status_code == 401, resp.text


def test_wrong_password_is_401(mesh, user):
    resp = requests.post(
        mesh.url("/api/auth/login"),
        json={"email": user.email, "password": "not-the-password-at-all"},
        timeout=15,
    )
    assert resp.status_code == 401, resp.text
