"""argon2id password hashing at OWASP's recommended parameters."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1 is the minimum.
# We take m=19 MiB and t=3: above the floor, and ~25 ms a hash on one core.
MEMORY_KIB = 19 * 1024
TIME_COST = 3
PARALLELISM = 1

Offload = Callable[..., Any]


def _inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class PasswordHasher:
    """Hash and verify; ``offload`` runs the CPU-heavy call off the event loop."""

    def __init__(self, offload: Offload = _inline) -> None:
        self._argon2 = Argon2Hasher(
            time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM, type=Type.ID
        )
        self._offload = offload

    @cached_property
    def _dummy(self) -> str:
        return str(self._offload(self._argon2.hash, "dummy password for timing equalisation"))

    def hash(self, password: str) -> str:
        return str(self._offload(self._argon2.hash, password))

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True if ``password`` matches; an unknown user costs the same time as a wrong one."""
        try:
            matched = self._offload(self._argon2.verify, password_hash or self._dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return bool(matched) and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return bool(self._argon2.check_needs_rehash(password_hash))
