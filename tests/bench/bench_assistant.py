"""Benchmark: the course assistant through the gateway, streamed as Server-Sent Events.

Run against a running mesh (``make run``; ``BENCH=1`` raises the rate limits). It sets up an
instructor with a published course and an enrolled student, then asks ``--questions``
questions at each ``--concurrency`` (1 and 4 by default) and prints, per level, the time to
the first SSE event (the ``sources``) and to the last (``done`` or ``error``): p50 and p99.
Extractive answers unless the mesh runs with OPENAI_BASE_URL / OPENAI_API_KEY.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from mesh.settings import get_settings
from tests.bench.bench_register import percentile

PASSWORD = "bench-password-42"
LESSONS = (
    "A decorator is a function that takes a function and returns another one. Writing @timed "
    "above a definition is shorthand for rebinding the name to timed(original). Inside a "
    "decorator you usually define a wrapper that accepts *args and **kwargs, runs some code "
    "before the original call, calls it, and returns its result unchanged. Use functools.wraps "
    "on the wrapper so the decorated function keeps its name, its docstring and its signature.",
    "A generator function uses yield to produce values lazily, one at a time. Calling it "
    "returns a generator object; each next() runs the body to the following yield. Generator "
    "expressions look like list comprehensions in parentheses and never build the whole list.",
    "A context manager sets something up and tears it down: the with statement calls __enter__ "
    "then __exit__, even when the block raises. contextlib.contextmanager turns a generator "
    "with one yield into a context manager, which is the shortest way to write one.",
)
QUESTIONS = (
    "how do I keep the name of a decorated function?",
    "what does a decorator return?",
    "how do generators produce values?",
    "what is the difference between a generator expression and a list comprehension?",
    "what does the with statement call?",
    "how do I write a context manager with contextlib?",
    "what is a wrapper function?",
    "who won the football world cup in 2018?",  # not in the course
)


@dataclass
class Timing:
    first: float
    last: float
    ending: str


def post(base: str, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    response = requests.post(f"{base}{path}", json=body, headers=headers or {}, timeout=30)
    if response.status_code >= 300:
        raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:300]}")
    return response.json()


def account(base: str, role: str) -> dict[str, str]:
    email = f"bench-{role}-{uuid.uuid4().hex[:8]}@example.com"
    post(
        base,
        "/api/auth/register",
        {"email": email, "password": PASSWORD, "name": "B", "role": role},
    )
    token = post(base, "/api/auth/login", {"email": email, "password": PASSWORD})["access_token"]
    return {"Authorization": f"Bearer {token}"}


def published_course(base: str, teacher: dict[str, str], timeout: float) -> int:
    """A new course with the lessons, published (the pipeline's job waited for)."""
    course = post(base, "/api/courses", {"title": f"Bench {uuid.uuid4().hex[:6]}"}, teacher)
    for number, text in enumerate(LESSONS, start=1):
        lesson = {"title": f"Lesson {number}", "text": text}
        post(base, f"/api/courses/{course['id']}/lessons", lesson, teacher)
    job = post(base, f"/api/courses/{course['id']}/publish", {}, teacher)
    deadline = time.monotonic() + timeout
    while job["status"] not in ("succeeded", "failed"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"publishing job {job['id']} did not finish in {timeout:g} s")
        time.sleep(0.5)
        job = requests.get(f"{base}/api/jobs/{job['id']}", headers=teacher, timeout=10).json()
    if job["status"] != "succeeded":
        raise RuntimeError(f"publishing failed: {job.get('error')}")
    return int(course["id"])


def ask(base: str, headers: dict[str, str], course_id: int, question: str) -> Timing:
    """One streamed question: seconds to its first event and to its last."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    body = json.dumps({"course_id": course_id, "question": question})
    wanted = {**headers, "Content-Type": "application/json", "Accept": "text/event-stream"}
    started = time.perf_counter()
    connection.request("POST", "/api/assistant/ask", body=body, headers=wanted)
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"ask: {response.status} {response.read()[:300]!r}")
    first: float | None = None
    try:
        while line := response.readline():
            if not line.startswith(b"event: "):
                continue
            now = time.perf_counter() - started
            first = now if first is None else first
            event = line.removeprefix(b"event: ").strip().decode()
            if event in ("done", "error"):
                return Timing(first, now, event)
    finally:
        connection.close()
    raise RuntimeError("the stream ended without done or error")


def run(
    base: str, headers: dict[str, str], course_id: int, count: int, askers: int
) -> list[Timing]:
    questions = list(itertools.islice(itertools.cycle(QUESTIONS), count))
    timings: list[Timing] = []
    lock = threading.Lock()

    def one(question: str) -> None:
        timing = ask(base, headers, course_id, question)
        with lock:
            timings.append(timing)

    with ThreadPoolExecutor(askers) as pool:
        list(pool.map(one, questions))
    return timings


def report(askers: int, timings: list[Timing], seconds: float) -> str:
    firsts = [t.first * 1000 for t in timings]
    lasts = [t.last * 1000 for t in timings]
    errors = sum(1 for t in timings if t.ending == "error")
    return (
        f"{askers} asker(s): n={len(timings)} in {seconds:.1f} s, errors={errors}  "
        f"first event p50={percentile(firsts, 50):7.1f} ms p99={percentile(firsts, 99):7.1f} ms  "
        f"done p50={percentile(lasts, 50):7.1f} ms p99={percentile(lasts, 99):7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--publish-timeout", type=float, default=180.0)
    args = parser.parse_args()
    base = get_settings().gateway_url
    teacher = account(base, "instructor")
    course_id = published_course(base, teacher, args.publish_timeout)
    student = account(base, "student")
    post(base, f"/api/courses/{course_id}/enroll", {}, student)
    ask(base, student, course_id, QUESTIONS[0])  # warm-up: connections, caches
    for askers in args.concurrency:
        started = time.perf_counter()
        timings = run(base, student, course_id, args.questions, askers)
        print(report(askers, timings, time.perf_counter() - started))


if __name__ == "__main__":
    main()
