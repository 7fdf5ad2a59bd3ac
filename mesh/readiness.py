"""Waiting for the gateway's /ready, saying what is still missing while it waits."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True)
class Probe:
    """One look at /ready: ready, or what it still waits for."""

    ready: bool
    waiting_for: str = ""


def missing(body: bytes) -> str:
    """What a 503 /ready body waits for: ``content, assistant (unavailable); redis (...)``."""
    try:
        answer = json.loads(body)
        states = {**dict(answer.get("services") or {}), "redis": answer.get("redis", "ok")}
    except (ValueError, AttributeError, TypeError):
        return "the gateway (an unexpected /ready answer)"
    by_state: dict[str, list[str]] = {}
    for name, state in states.items():
        if state != "ok":
            by_state.setdefault(str(state), []).append(str(name))
    if not by_state:
        return "the gateway (503 with every dependency ok)"
    return "; ".join(f"{', '.join(names)} ({state})" for state, names in by_state.items())


def probe(gateway_url: str, timeout: float = 5.0) -> Probe:
    """GET ``gateway_url``/ready once."""
    try:
        with urllib.request.urlopen(f"{gateway_url}/ready", timeout=timeout) as response:  # noqa: S310
            if response.status == 200:
                return Probe(ready=True)
            return Probe(ready=False, waiting_for=f"the gateway (HTTP {response.status})")
    except urllib.error.HTTPError as exc:
        return Probe(ready=False, waiting_for=missing(exc.read()))
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        return Probe(ready=False, waiting_for=f"the gateway at {gateway_url} ({reason})")


def wait(
    look: Callable[[], Probe],
    timeout: float,
    out: TextIO,
    *,
    every: float = 5.0,
    interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Probe:
    """Call ``look`` until it is ready or ``timeout`` passes; the last probe.

    Every ``every`` seconds, and whenever what is missing changes, a line on ``out`` says
    what it is waiting for.
    """
    start = clock()
    shown, shown_at = "", start
    last = Probe(ready=False, waiting_for="the gateway (no answer yet)")
    while clock() - start < timeout:
        last = look()
        if last.ready:
            return last
        now = clock()
        if last.waiting_for != shown or now - shown_at >= every:
            print(f"waiting for: {last.waiting_for} [{now - start:.0f}s]", file=out, flush=True)
            shown, shown_at = last.waiting_for, now
        sleep(interval)
    return last
