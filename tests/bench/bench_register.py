"""Benchmark: register latency, and register-to-notification delay, against a running mesh.

Run with ``make bench`` (after ``make run``). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

import requests
from pymongo import MongoClient

from mesh.settings import get_settings

PASSWORD = "bench-password-42"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def register(session: requests.Session, base: str) -> tuple[float, int]:
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    started = time.perf_counter()
    response = session.post(
        f"{base}/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Bench"}
    )
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, int(response.json()["id"])


def notification_delay(session: requests.Session, base: str, mongo: MongoClient, db: str) -> float:
    _, user_id = register(session, base)
    registered = time.perf_counter()
    collection = mongo[db]["notifications"]
    # find_one, not count_documents: the embedded server answers a count with a full scan.
    while collection.find_one({"userId": user_id}) is None:
        if time.perf_counter() - registered > 30:
            raise TimeoutError(f"no notification for user {user_id} after 30 s")
        time.sleep(0.002)
    return time.perf_counter() - registered


def report(name: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{name:38s} n={len(ms):4d}  p50={percentile(ms, 50):7.1f} ms  "
        f"p99={percentile(ms, 99):7.1f} ms  mean={statistics.mean(ms):7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--fanout", type=int, default=30)
    args = parser.parse_args()
    settings = get_settings()
    base = settings.gateway_url
    session = requests.Session()
    mongo: MongoClient[dict[str, Any]] = MongoClient(
        settings.mongo_uri, serverSelectionTimeoutMS=5000
    )
    register(session, base)  # warm-up
    latencies = [register(session, base)[0] for _ in range(args.requests)]
    db = settings.mongo_db
    delays = [notification_delay(session, base, mongo, db) for _ in range(args.fanout)]
    report("POST /api/auth/register (sequential)", latencies)
    report("register response -> notification", delays)


if __name__ == "__main__":
    main()
