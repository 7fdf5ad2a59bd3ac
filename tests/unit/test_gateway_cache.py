"""The response cache: hits, misses, invalidation, the reader/writer race, and Redis failures."""

from __future__ import annotations

import json
import logging

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from contracts.errors import NotFound
from contracts.users import PublicUser
from gateway.cache import ResponseCache
from mesh.cache_keys import generation_key, value_key


class Loader:
    """Counts loads; answers ``user`` with the current ``name``."""

    def __init__(self, name: str = "Ada") -> None:
        self.name = name
        self.loads = 0

    def __call__(self) -> PublicUser:
        self.loads += 1
        return PublicUser(id=1, name=self.name)


@pytest.fixture
def cache(fake_redis) -> ResponseCache:
    return ResponseCache(fake_redis)  # type: ignore[arg-type]


def test_a_miss_loads_and_stores_then_a_hit_does_not_load(cache, fake_redis):
    load = Loader()
    assert cache.cached("user", 1, PublicUser, load) == (PublicUser(id=1, name="Ada"), False)
    assert cache.cached("user", 1, PublicUser, load) == (PublicUser(id=1, name="Ada"), True)
    assert load.loads == 1
    stored = json.loads(fake_redis.get("gw:cache:user:1"))
    assert stored == {"v": 1, "g": None, "data": {"id": 1, "name": "Ada"}}
    assert 590 < fake_redis.ttl("gw:cache:user:1") <= 600


def test_kinds_and_ids_have_their_own_keys(cache, fake_redis):
    assert value_key("order", 7) == "gw:cache:order:7"
    assert generation_key("order", 7) == "gw:cache-gen:order:7"
    cache.cached("user", 1, PublicUser, Loader())
    _, hit = cache.cached("user", 2, PublicUser, Loader())
    assert not hit


def test_invalidate_makes_the_next_read_a_miss(cache, fake_redis):
    load = Loader()
    cache.cached("user", 1, PublicUser, load)
    cache.invalidate("user", 1)
    assert fake_redis.get("gw:cache:user:1") is None
    assert 1190 < fake_redis.ttl("gw:cache-gen:user:1") <= 1200
    load.name = "Ada L."
    assert cache.cached("user", 1, PublicUser, load) == (PublicUser(id=1, name="Ada L."), False)
    assert cache.cached("user", 1, PublicUser, load)[1] is True


def test_an_answer_loaded_before_a_write_is_never_served_after_it(cache):
    """A slow reader stores what it read before a writer invalidated: that entry is stale."""
    writer_done = False

    def slow_load() -> PublicUser:
        nonlocal writer_done
        old = PublicUser(id=1, name="old")
        cache.invalidate("user", 1)  # the write and its invalidation happen meanwhile
        writer_done = True
        return old

    value, hit = cache.cached("user", 1, PublicUser, slow_load)
    assert writer_done and (value.name, hit) == ("old", False)
    fresh = Loader("new")
    assert cache.cached("user", 1, PublicUser, fresh) == (PublicUser(id=1, name="new"), False)
    assert cache.cached("user", 1, PublicUser, fresh)[1] is True


def test_errors_are_never_stored(cache, fake_redis):
    def missing() -> PublicUser:
        raise NotFound("user 1 not found")

    for _ in range(2):
        with pytest.raises(NotFound):
            cache.cached("user", 1, PublicUser, missing)
    assert fake_redis.get("gw:cache:user:1") is None


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        json.dumps({"v": 0, "g": None, "data": {"id": 1, "name": "old format"}}),
        json.dumps({"v": 1, "g": None, "data": {"id": "x"}}),
        json.dumps({"v": 1, "g": None}),
        json.dumps({"v": 1, "g": "another generation", "data": {"id": 1, "name": "stale"}}),
    ],
)
def test_an_unusable_entry_is_a_miss_and_is_replaced(cache, fake_redis, raw):
    fake_redis.set("gw:cache:user:1", raw)
    load = Loader()
    assert cache.cached("user", 1, PublicUser, load) == (PublicUser(id=1, name="Ada"), False)
    assert cache.cached("user", 1, PublicUser, load)[1] is True


def _broken(*_args, **_kwargs):
    raise RedisConnectionError("redis is down")


def test_a_failed_read_falls_through_to_the_loader(cache, fake_redis, monkeypatch, caplog):
    monkeypatch.setattr(fake_redis, "mget", _broken)
    load = Loader()
    with caplog.at_level(logging.WARNING, logger="gateway.cache"):
        assert cache.cached("user", 1, PublicUser, load) == (PublicUser(id=1, name="Ada"), False)
    assert load.loads == 1
    assert "cache read of gw:cache:user:1 failed" in caplog.text


def test_a_failed_store_still_answers(cache, fake_redis, monkeypatch):
    monkeypatch.setattr(fake_redis, "set", _broken)
    assert cache.cached("user", 1, PublicUser, Loader())[0].name == "Ada"


def test_a_failed_invalidation_is_logged_not_raised(cache, fake_redis, monkeypatch, caplog):
    monkeypatch.setattr(fake_redis, "set", _broken)
    with caplog.at_level(logging.ERROR, logger="gateway.cache"):
        cache.invalidate("order", 3)
    assert "cache invalidation of gw:cache:order:3 failed" in caplog.text


def test_invalidating_runs_even_when_the_block_fails(cache, fake_redis):
    cache.cached("user", 1, PublicUser, Loader())
    with pytest.raises(RuntimeError), cache.invalidating("user", 1):
        raise RuntimeError("the write timed out")
    assert cache.cached("user", 1, PublicUser, Loader())[1] is False


# ----------------------------------------------------------------- through the routes


def test_a_route_answers_from_the_service_when_the_cache_cannot_be_read(
    client, fake_catalog, fake_redis, monkeypatch
):
    fake_catalog.add("Lamp")
    monkeypatch.setattr(fake_redis, "mget", _broken)
    for _ in range(2):
        response = client.get("/api/products/1")
        assert response.status_code == 200 and response.headers["X-Cache"] == "MISS"


def test_token_checks_still_fail_closed_when_redis_is_down(client, login, fake_redis, monkeypatch):
    token = login()["access_token"]
    monkeypatch.setattr(fake_redis, "exists", _broken)
    monkeypatch.setattr(fake_redis, "mget", _broken)
    response = client.get("/api/orders/1", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"
