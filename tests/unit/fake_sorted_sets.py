"""Redis sorted sets in memory, for the fakes of redis-py's Redis (``gateway_helpers.FakeRedis``,
``fake_redis_streams.FakeStreamsRedis``): the subset the SSE stream slots use
(``gateway.streams``). As in Redis, a set left empty is gone, and so is one past its expiry
(``expire``: a fake with an ``expire`` of its own keeps that one)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class FakeSortedSets:
    """``zadd``, ``zcard``, ``zrem``, ``zremrangebyscore``, ``zscore``, ``expire``, and a
    pipeline."""

    _zsets_lock = threading.Lock()

    @property
    def zsets(self) -> dict[str, dict[str, float]]:
        """Each set's members and scores (made on first use: no ``__init__`` to call)."""
        found: dict[str, dict[str, float]] = self.__dict__.setdefault("_zsets", {})
        deadlines: dict[str, float] = self.__dict__.setdefault("_zset_deadlines", {})
        for name, deadline in list(deadlines.items()):
            if name not in found or deadline <= time.monotonic():  # deleted, or expired
                found.pop(name, None)
                del deadlines[name]
        return found

    def expire(self, name: str, seconds: int) -> bool:
        with self._zsets_lock:
            if name not in self.zsets:
                return False
            self.__dict__["_zset_deadlines"][name] = time.monotonic() + seconds
            return True

    def zadd(self, name: str, mapping: dict[str, float], nx: bool = False, xx: bool = False) -> int:
        with self._zsets_lock:
            members = self.zsets.setdefault(name, {})
            added = 0
            for member, score in mapping.items():
                exists = member in members
                if (nx and exists) or (xx and not exists):
                    continue
                added += not exists
                members[member] = float(score)
            if not members:
                del self.zsets[name]
            return added

    def zcard(self, name: str) -> int:
        with self._zsets_lock:
            return len(self.zsets.get(name, {}))

    def zscore(self, name: str, member: str) -> float | None:
        with self._zsets_lock:
            return self.zsets.get(name, {}).get(member)

    def zrem(self, name: str, *members: str) -> int:
        with self._zsets_lock:
            found = self.zsets.get(name, {})
            removed = sum(1 for m in members if found.pop(m, None) is not None)
            if name in self.zsets and not found:
                del self.zsets[name]
            return removed

    def zremrangebyscore(self, name: str, min: float | str, max: float | str) -> int:
        low, high = _bound(min), _bound(max)
        with self._zsets_lock:
            found = self.zsets.get(name, {})
            gone = [m for m, score in found.items() if low <= score <= high]
            for member in gone:
                del found[member]
            if name in self.zsets and not found:
                del self.zsets[name]
            return len(gone)

    def pipeline(self, transaction: bool = True) -> Any:  # a fake may queue calls its own way
        return QueuedCalls(self)


def _bound(value: float | str) -> float:
    if value in ("-inf", "+inf", "inf"):
        return float(str(value))
    return float(value)


class QueuedCalls:
    """A pipeline: queues calls and runs them in order on ``execute`` (one thread at a time
    in these fakes, so a transaction's atomicity is not modelled)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.calls: list[Callable[[], Any]] = []

    def __getattr__(self, name: str) -> Callable[..., QueuedCalls]:
        method = getattr(self.redis, name)

        def queue(*args: Any, **kwargs: Any) -> QueuedCalls:
            self.calls.append(lambda: method(*args, **kwargs))
            return self

        return queue

    def execute(self) -> list[Any]:
        results = [call() for call in self.calls]
        self.calls.clear()
        return results
