"""A per-process memory of the tokens whose signature this gateway worker has verified.

flask-jwt-extended decodes a token twice and reads its header twice on every request, and
PyJWT checks the base64 alphabet character by character: about half a millisecond of CPU,
a third of a cached read's. A token is an immutable, signed string, so once one exact string
has passed verification it passes again until its ``exp``: the memory answers that, and
everything that can change (revocation, in Redis) is still checked on every request.

flask-jwt-extended has no public hook for this, so :class:`CachingJWTManager` overrides its
``_decode_jwt_from_config``; the version is pinned, and the auth tests run through it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_jwt_extended import JWTManager

DEFAULT_SIZE = 4096


class VerifiedTokens:
    """At most ``size`` verified tokens and their claims; the oldest go first."""

    def __init__(self, size: int = DEFAULT_SIZE, clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.clock = clock
        self._claims: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str) -> dict[str, Any] | None:
        """A copy of the claims of ``token`` if it was verified and has not expired."""
        claims = self._claims.get(token)
        if claims is None:
            return None
        if self.clock() >= claims["exp"]:
            with self._lock:
                self._claims.pop(token, None)
            return None
        return dict(claims)

    def put(self, token: str, claims: dict[str, Any]) -> None:
        if not isinstance(claims.get("exp"), int | float):
            return  # never keep a token that does not expire
        with self._lock:
            self._claims[token] = dict(claims)
            while len(self._claims) > self.size:
                self._claims.popitem(last=False)


class CachingJWTManager(JWTManager):
    """A JWTManager that verifies each token string once per process (see the module)."""

    def __init__(self, app: Flask | None = None, verified: VerifiedTokens | None = None) -> None:
        self.verified = verified or VerifiedTokens()
        super().__init__(app)

    def _decode_jwt_from_config(
        self, encoded_token: str, csrf_value: Any = None, allow_expired: bool = False
    ) -> dict[str, Any]:
        if csrf_value is not None or allow_expired:
            return super()._decode_jwt_from_config(encoded_token, csrf_value, allow_expired)
        claims = self.verified.get(encoded_token)
        if claims is None:
            claims = super()._decode_jwt_from_config(encoded_token)
            self.verified.put(encoded_token, claims)
        return claims
