"""Caps on Server-Sent Event streams: streams never take the threads REST needs.

An open stream holds a gateway thread. Each stream takes a slot first:

- per gateway process, at most ``SSE_MAX_TOTAL`` at once (a counter under a lock), well
  below ``GATEWAY_THREADS``; beyond it, 503;
- per user, over every gateway process, at most ``SSE_MAX_PER_USER`` (a Redis sorted set of
  leases: a stream renews its lease as it sends, so the slots of a killed worker lapse, the
  user's next open sweeps them, and the set itself expires a lease after its last renewal);
  beyond it, 429.

Both answers carry Retry-After. A stream gives its slot back however it ends: :func:`guarded`
releases it in its ``finally`` (also when the server closes the body because the client went
away), and the response's close releases it for a body never iterated. The gauge
``gateway_sse_streams_open`` (/metrics, summed over the workers) counts the slots held.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator

from flask import current_app
from prometheus_client import CollectorRegistry, Gauge
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.exceptions import ServiceUnavailable, TooManyRequests

from gateway.deps import deps
from mesh.settings import get_settings

log = logging.getLogger(__name__)

GATE_KEY = "mesh.streams"
USER_KEY = "sse:user:{user_id}"
LEASE_SECONDS = 60
"""A stream's hold on its user slot; renewed at each chunk it sends (a keepalive comes every
SSE_KEEPALIVE_SECONDS), so only a stream whose process died lets it lapse."""
RENEW_EVERY = LEASE_SECONDS / 4

_gate_lock = threading.Lock()


class StreamGate:
    """The stream slots of one gateway process, and its users' slots in Redis."""

    def __init__(
        self,
        store: Redis,
        max_total: int,
        max_per_user: int,
        retry_after: int,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.store = store
        self.max_total = max_total
        self.max_per_user = max_per_user
        self.retry_after = retry_after
        self.clock = clock
        self._lock = threading.Lock()
        self._open = 0
        self._gauge = Gauge(
            "gateway_sse_streams_open",
            "Server-Sent Event streams holding a slot.",
            registry=registry,
            multiprocess_mode="livesum",
        )

    @property
    def open_streams(self) -> int:
        """Streams holding a slot of this process now."""
        with self._lock:
            return self._open

    def open(self, user_id: int) -> Slot:
        """A slot for one more stream of ``user_id``: 503 when this process has its
        maximum, 429 when the user has theirs."""
        self._take_local()
        try:
            slot = Slot(self, user_id, uuid.uuid4().hex)
            if not self._take_user(slot):
                raise TooManyRequests(
                    f"at most {self.max_per_user} open event streams per user: close one, "
                    f"or retry in {self.retry_after} s",
                    retry_after=self.retry_after,
                )
        except BaseException:
            self._give_local()
            raise
        return slot

    def _take_local(self) -> None:
        with self._lock:
            if self._open >= self.max_total:
                raise ServiceUnavailable(
                    f"too many open event streams: retry in {self.retry_after} s",
                    retry_after=self.retry_after,
                )
            self._open += 1
            self._gauge.inc()

    def _give_local(self) -> None:
        with self._lock:
            self._open -= 1
            self._gauge.dec()

    def _take_user(self, slot: Slot) -> bool:
        """Sweep lapsed leases, add this one and count, in one transaction; over the cap,
        take it back. Two racing opens may both be refused, never both admitted."""
        now = self.clock()
        pipe = self.store.pipeline(transaction=True)
        pipe.zremrangebyscore(slot.key, "-inf", now)
        pipe.zadd(slot.key, {slot.id: now + LEASE_SECONDS})
        pipe.expire(slot.key, LEASE_SECONDS)
        pipe.zcard(slot.key)
        held = int(pipe.execute()[-1])
        if held <= self.max_per_user:
            return True
        self.store.zrem(slot.key, slot.id)
        return False


class Slot:
    """One open stream's hold on its process slot and its user slot."""

    def __init__(self, gate: StreamGate, user_id: int, slot_id: str) -> None:
        self.gate = gate
        self.key = USER_KEY.format(user_id=user_id)
        self.id = slot_id
        self.renewed = gate.clock()
        self._released = False
        self._lock = threading.Lock()

    def renew(self) -> None:
        """Extend the user-slot lease, at most every RENEW_EVERY seconds."""
        now = self.gate.clock()
        if now - self.renewed < RENEW_EVERY:
            return
        self.renewed = now
        try:
            pipe = self.gate.store.pipeline(transaction=False)
            pipe.zadd(self.key, {self.id: now + LEASE_SECONDS}, xx=True)
            pipe.expire(self.key, LEASE_SECONDS)
            pipe.execute()
        except RedisError as exc:
            log.warning("could not renew an event stream's slot: %r", exc)

    def release(self) -> None:
        """Give both slots back (idempotent)."""
        with self._lock:
            if self._released:
                return
            self._released = True
        self.gate._give_local()
        try:
            self.gate.store.zrem(self.key, self.id)
        except RedisError as exc:  # the lease lapses by itself
            log.warning("could not release an event stream's slot: %r", exc)


def guarded(slot: Slot, body: Iterator[str]) -> Iterator[str]:
    """``body``, renewing ``slot`` as it sends, and releasing it however the stream ends."""
    try:
        for chunk in body:
            slot.renew()
            yield chunk
    finally:
        try:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        finally:
            slot.release()


def gate() -> StreamGate:
    """The current app's :class:`StreamGate`, made on first use from ``SSE_MAX_TOTAL`` and
    ``SSE_MAX_PER_USER`` (the app's config, else Settings)."""
    with _gate_lock:
        found: StreamGate | None = current_app.extensions.get(GATE_KEY)
        if found is None:
            settings = get_settings()
            config = current_app.config
            keepalive = float(config["SSE_KEEPALIVE_SECONDS"])
            found = current_app.extensions[GATE_KEY] = StreamGate(
                deps().redis,
                max_total=int(config.get("SSE_MAX_TOTAL", settings.sse_max_total)),
                max_per_user=int(config.get("SSE_MAX_PER_USER", settings.sse_max_per_user)),
                # A stream whose client left is noticed at its next writes: about two
                # keepalives.
                retry_after=max(1, math.ceil(2 * keepalive)),
                registry=deps().metrics,
            )
        return found


def open_slot(user_id: int) -> Slot:
    """A slot of the current app for one more stream of ``user_id`` (429 or 503 if none)."""
    return gate().open(user_id)
