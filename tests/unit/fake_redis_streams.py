"""A thread-safe fake of redis-py's Redis (``decode_responses=True``) with streams.

The subset the gateway and the assistant's event stream use: strings with expiry (``set``,
``get``, ``exists``, ``delete``, ``ttl``, ``expire``), streams (``xadd``, ``xread`` with
``block``, ``xrange``) and a non-transactional ``pipeline``. A blocking ``xread`` waits on a
condition that every write notifies, as a real one waits on the server.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from tests.unit.fake_sorted_sets import FakeSortedSets, QueuedCalls

Entry = tuple[str, dict[str, str]]


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class FakeStreamsRedis(FakeSortedSets):
    """Strings and streams in memory; ``expires`` holds each key's deadline (monotonic)."""

    def __init__(self) -> None:
        self.strings: dict[str, str] = {}
        self.streams: dict[str, list[Entry]] = {}
        self.expires: dict[str, float] = {}
        self.down = False
        self._ids = itertools.count(1)
        self._changed = threading.Condition()

    # keys

    def _live(self, key: str) -> bool:
        deadline = self.expires.get(key)
        if deadline is not None and deadline <= time.monotonic():
            self.strings.pop(key, None)
            self.streams.pop(key, None)
            self.expires.pop(key, None)
        return key in self.strings or key in self.streams

    def exists(self, *names: str) -> int:
        with self._changed:
            return sum(1 for name in names if self._live(name))

    def delete(self, *names: str) -> int:
        with self._changed:
            found = [name for name in names if self._live(name)]
            for name in found:
                self.strings.pop(name, None)
                self.streams.pop(name, None)
                self.expires.pop(name, None)
            return len(found)

    def expire(self, name: str, seconds: int) -> bool:
        with self._changed:
            if not self._live(name):
                return False
            self.expires[name] = time.monotonic() + seconds
            return True

    def ttl(self, name: str) -> int:
        with self._changed:
            if not self._live(name):
                return -2
            deadline = self.expires.get(name)
            return -1 if deadline is None else max(0, round(deadline - time.monotonic()))

    def ping(self) -> bool:
        if self.down:
            from redis.exceptions import ConnectionError

            raise ConnectionError("fake redis is down")
        return True

    # strings

    def set(
        self, name: str, value: Any, ex: int | None = None, px: int | None = None, nx: bool = False
    ) -> bool | None:
        with self._changed:
            if nx and self._live(name):
                return None
            self.strings[name] = str(value)
            ttl = ex if ex is not None else (px / 1000 if px is not None else None)
            if ttl is None:
                self.expires.pop(name, None)
            else:
                self.expires[name] = time.monotonic() + ttl
            self._changed.notify_all()
            return True

    def get(self, name: str) -> str | None:
        with self._changed:
            return self.strings.get(name) if self._live(name) else None

    # streams

    def xadd(
        self,
        name: str,
        fields: dict[str, Any],
        maxlen: int | None = None,
        approximate: bool = True,
    ) -> str:
        with self._changed:
            self._live(name)
            entry_id = f"{next(self._ids)}-0"
            entries = self.streams.setdefault(name, [])
            entries.append((entry_id, {k: str(v) for k, v in fields.items()}))
            if maxlen is not None and len(entries) > maxlen:
                del entries[: len(entries) - maxlen]
            self._changed.notify_all()
            return entry_id

    def xrange(self, name: str) -> list[Entry]:
        with self._changed:
            return list(self.streams.get(name, [])) if self._live(name) else []

    def xread(
        self, streams: dict[str, str], count: int | None = None, block: int | None = None
    ) -> list[list[Any]]:
        """RESP2's shape: ``[[key, [(id, fields), ...]], ...]``; waits up to ``block`` ms
        (None: not at all) for an entry after the given ids."""
        deadline = None if block is None else time.monotonic() + block / 1000
        with self._changed:
            while True:
                found = self._after(streams, count)
                if found or deadline is None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._changed.wait(left)

    def _after(self, streams: dict[str, str], count: int | None) -> list[list[Any]]:
        found: list[list[Any]] = []
        for name, last in streams.items():
            if not self._live(name):
                continue
            newer = [e for e in self.streams[name] if _id_key(e[0]) > _id_key(last)]
            if newer:
                found.append([name, newer[:count] if count else newer])
        return found

    def pipeline(self, transaction: bool = True) -> QueuedCalls:
        return QueuedCalls(self)
