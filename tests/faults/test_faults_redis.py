"""Redis stopped: the gateway fails closed (503, never a 500 or an unchecked request), and
recovers by itself once Redis is back."""

from __future__ import annotations

import requests

from tests.e2e.conftest import Mesh, eventually
from tests.faults.helpers import auth
from tests.faults.servers import PrivateRedis


def answers(mesh: Mesh, headers: dict[str, str], user_email: str) -> dict[str, int]:
    """Status of a few requests that need Redis: rate limits, token checks, the cache."""
    login = requests.post(
        mesh.url("/api/auth/login"),
        json={"email": user_email, "password": "correct-horse-battery-9"},
        timeout=30,
    )
    me = requests.get(mesh.url("/api/users/me"), headers=headers, timeout=30)
    products = requests.get(mesh.url("/api/products"), timeout=30)
    return {"login": login.status_code, "me": me.status_code, "products": products.status_code}


def test_the_gateway_fails_closed_without_redis(mesh: Mesh, private_redis: PrivateRedis) -> None:
    user = mesh.register()
    headers = auth(mesh, user)
    assert set(answers(mesh, headers, user.email).values()) == {200}

    private_redis.stop()
    try:
        assert answers(mesh, headers, user.email) == {"login": 503, "me": 503, "products": 503}
    finally:
        private_redis.start()

    eventually(
        lambda: set(answers(mesh, headers, user.email).values()) == {200},
        60,
        interval=1,
        what="the gateway to answer 200 again once Redis is back",
    )
