"""A small Redis cache of successful GET answers: an optimisation, never a source of truth.

Keys (``kind`` is ``product``, ``order`` or ``user``; ``key`` is the resource id):

- ``gw:cache:{kind}:{key}``: ``{"v": FORMAT, "g": generation, "data": <the answer's JSON>}``;
- ``gw:cache-gen:{kind}:{key}``: the generation, a random token replaced by every invalidation.

An entry counts only while its ``g`` equals the current generation. So an answer loaded before
a write and stored after that write invalidated the key (a slow reader racing a writer) is never
served. Only answers that passed their contract are stored: errors never are.

Failures: a Redis error while reading or storing falls through to the loader (logged); an
invalidation that fails is logged as an error and the entry's TTL bounds how stale it can get.
Rate limits and token checks do not go through here: they keep failing closed.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import Response, jsonify
from pydantic import BaseModel, ValidationError
from redis import Redis
from redis.exceptions import RedisError

from gateway import deps
from mesh.cache_keys import TTLS, generation_key, value_key

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)

FORMAT = 1
HEADER = "X-Cache"


class ResponseCache:
    """Read-through caching of one model per (kind, key), with generation-checked entries."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def cached(
        self, kind: str, key: int | str, model: type[M], load: Callable[[], M]
    ) -> tuple[M, bool]:
        """``(value, hit)``: the cached value, else ``load()`` (stored only if it returns)."""
        try:
            raw, generation = self.redis.mget(value_key(kind, key), generation_key(kind, key))
        except RedisError as exc:
            log.warning("cache read of %s failed: %r", value_key(kind, key), exc)
            return load(), False
        entry = self._entry(kind, key, model, raw, generation)
        if entry is not None:
            return entry, True
        value = load()
        self._store(kind, key, value, generation)
        return value, False

    def invalidate(self, kind: str, key: int | str) -> None:
        """Make every stored or in-flight entry of (kind, key) stale; never raises."""
        try:
            # The generation outlives any entry stored under the old one (TTL + a slow load).
            # One round trip: the new generation alone already makes the entry stale.
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(generation_key(kind, key), uuid.uuid4().hex, ex=2 * TTLS[kind])
            pipe.delete(value_key(kind, key))
            pipe.execute()
        except RedisError as exc:
            log.error("cache invalidation of %s failed: %r", value_key(kind, key), exc)

    @contextmanager
    def invalidating(self, kind: str, key: int | str) -> Iterator[None]:
        """Invalidate (kind, key) after the block, whatever its outcome (a timed-out write
        may still have happened)."""
        try:
            yield
        finally:
            self.invalidate(kind, key)

    def _entry(
        self, kind: str, key: int | str, model: type[M], raw: Any, generation: Any
    ) -> M | None:
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
            if entry.get("v") != FORMAT or entry.get("g") != generation:
                return None
            return model.model_validate(entry["data"])
        except (ValueError, TypeError, KeyError, AttributeError, ValidationError):
            log.warning("unreadable cache entry %s ignored", value_key(kind, key))
            return None

    def _store(self, kind: str, key: int | str, value: BaseModel, generation: Any) -> None:
        entry = {"v": FORMAT, "g": generation, "data": value.model_dump(mode="json")}
        try:
            self.redis.set(value_key(kind, key), json.dumps(entry), ex=TTLS[kind])
        except RedisError as exc:
            log.warning("cache store of %s failed: %r", value_key(kind, key), exc)


def response_cache() -> ResponseCache:
    """The cache of the current app."""
    return ResponseCache(deps.redis())


def cached_json(value: BaseModel, hit: bool) -> Response:
    """A 200 JSON response of ``value`` with ``X-Cache: HIT`` or ``MISS``."""
    response = jsonify(value.model_dump(mode="json"))
    response.headers[HEADER] = "HIT" if hit else "MISS"
    return response
