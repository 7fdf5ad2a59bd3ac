"""The gateway verifies each token string once per worker (gateway.verified_tokens): a token
seen before is not decoded again, yet expiry, revocation, tampering and the token's type
are still enforced on every request."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from gateway.verified_tokens import CachingJWTManager, VerifiedTokens
from tests.unit.gateway_helpers import FakeClock, bearer

TOKEN = "header.claims.signature"


def test_a_verified_token_is_answered_until_it_expires() -> None:
    clock = FakeClock()
    tokens = VerifiedTokens(clock=clock)
    tokens.put(TOKEN, {"sub": "1", "exp": clock.now + 60})
    claims = tokens.get(TOKEN)
    assert claims == {"sub": "1", "exp": clock.now + 60}
    claims["sub"] = "2"  # a caller's change does not reach the memory
    assert tokens.get(TOKEN) == {"sub": "1", "exp": clock.now + 60}
    clock.now += 60
    assert tokens.get(TOKEN) is None
    assert tokens.get("never.seen.token") is None


def test_a_token_without_exp_is_never_kept_and_the_oldest_go_first() -> None:
    clock = FakeClock()
    tokens = VerifiedTokens(size=2, clock=clock)
    tokens.put("no-exp", {"sub": "1"})
    assert tokens.get("no-exp") is None
    for name in ("a", "b", "c"):
        tokens.put(name, {"exp": clock.now + 60})
    assert [tokens.get(n) is not None for n in ("a", "b", "c")] == [False, True, True]


@pytest.fixture
def decodes(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens the real decoder of flask-jwt-extended was asked to verify."""
    seen: list[str] = []
    parent = CachingJWTManager.__mro__[1]
    real = parent._decode_jwt_from_config

    def counting(self: Any, encoded_token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(encoded_token)
        return real(self, encoded_token, *args, **kwargs)

    monkeypatch.setattr(parent, "_decode_jwt_from_config", counting)
    return seen


def test_a_token_is_decoded_once_and_still_refused_once_revoked(client, login, decodes):
    token = login()["access_token"]
    for _ in range(3):
        assert client.get("/api/users/me", headers=bearer(token)).status_code == 200
    assert decodes.count(token) == 1
    assert client.post("/api/auth/logout", headers=bearer(token)).status_code in (200, 204)
    assert client.get("/api/users/me", headers=bearer(token)).status_code == 401


def test_a_tampered_copy_of_a_verified_token_is_refused(client, login, decodes):
    token = login()["access_token"]
    assert client.get("/api/users/me", headers=bearer(token)).status_code == 200
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get("/api/users/me", headers=bearer(forged)).status_code == 401
    assert forged in decodes  # a different string is verified afresh


def test_a_verified_refresh_token_is_still_refused_where_an_access_token_is_needed(client, login):
    pair = login()
    refresh = pair["refresh_token"]
    assert client.post("/api/auth/refresh", headers=bearer(refresh)).status_code == 200
    assert client.get("/api/users/me", headers=bearer(refresh)).status_code == 401
