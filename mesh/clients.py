"""Client factories shared by nameko providers, actors and the gateway (no nameko import)."""

from __future__ import annotations

import redis
from pymongo import MongoClient

from mesh.settings import Settings


def make_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, decode_responses=True, health_check_interval=30)


def make_mongo(settings: Settings) -> MongoClient:
    return MongoClient(settings.mongo_uri, serverSelectionTimeoutMS=5000, tz_aware=True)
