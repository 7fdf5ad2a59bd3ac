"""Bulkheads for the gateway's RPC calls: a stopped or slow service cannot take every thread.

Each downstream service has a compartment per gateway process:

- at most ``max_in_flight`` calls to it at once. While the service answers, a call past
  that waits up to ``slot_wait`` seconds for a slot, with at most ``max_in_flight`` such
  waiters: a burst to a healthy service is served, not refused. Once a call to it has gone
  unanswered, or when the waiters are full, one more is refused at once
  (:class:`ServiceBusy`, 503 with Retry-After) instead of holding a thread for a whole RPC
  timeout: a dead service holds at most ``2 x max_in_flight`` threads, the waiters for at
  most ``slot_wait``;
- a circuit breaker: after ``failures`` calls in a row got no answer (:class:`NoAnswer`:
  a timeout, a lost connection, the service not running), calls are refused at once for
  ``reset_seconds``; then they go through again, and the first answer closes it while the
  next failure opens it for another ``reset_seconds``.

The breaker is written here, not taken from pybreaker: pybreaker holds its lock for the
whole protected call, which would let one call at a time reach a service.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from contracts.errors import Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_RETRY_AFTER = 1
"""Seconds a client is told to wait when a compartment is full: a call frees it when it
returns, and when the service is down its breaker soon answers with the real wait."""


class NoAnswer(Unavailable):
    """The service did not answer: a timeout, a lost connection, or it is not running."""


class ServiceBusy(Unavailable):
    """Refused without calling: too many calls to the service are in flight, or its
    breaker is open. ``retry_after`` (seconds) becomes the Retry-After header."""

    def __init__(self, service: str, retry_after: int) -> None:
        super().__init__(f"service {service} is busy or down, retry in {retry_after} s")
        self.service = service
        self.retry_after = retry_after


class Breaker:
    """Consecutive failures of one service, and when its breaker opened (None: closed)."""

    def __init__(
        self,
        service: str,
        failures: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.max_failures = failures
        self.reset_seconds = reset_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None

    def wait(self) -> float:
        """Seconds until calls may go through again; 0 when they may now."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self._opened_at + self.reset_seconds - self.clock())

    def failing(self) -> bool:
        """True once a call went unanswered, until the next answer."""
        with self._lock:
            return self._failures > 0

    def answered(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                log.info("service %s answers again: its breaker is closed", self.service)
            self._failures = 0
            self._opened_at = None

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures < self.max_failures:
                return
            now = self.clock()
            # Failures of calls that started before it opened do not extend an open breaker.
            if self._opened_at is None or now >= self._opened_at + self.reset_seconds:
                log.warning(
                    "service %s did not answer %d calls in a row: refusing calls for %s s",
                    self.service,
                    self._failures,
                    self.reset_seconds,
                )
                self._opened_at = now

    def watch(self, call: Callable[[], T]) -> T:
        """Run ``call`` and record how the service took it. A local Unavailable that is not
        a :class:`NoAnswer` (the RPC pool exhausted, a remote "my dependency is down")
        tells nothing about the service: it is not recorded."""
        try:
            result = call()
        except NoAnswer:
            self.failed()
            raise
        except Unavailable:
            raise
        except Exception:
            self.answered()  # a remote error is an answer
            raise
        self.answered()
        return result


class Compartment:
    """The in-flight slots, the waiters for a slot and the breaker of one service."""

    def __init__(
        self, service: str, max_in_flight: int, breaker: Breaker, slot_wait: float
    ) -> None:
        self.service = service
        self.slots = threading.BoundedSemaphore(max_in_flight)
        self.breaker = breaker
        self.slot_wait = slot_wait
        self.max_waiting = max_in_flight
        self._lock = threading.Lock()
        self._waiting = 0

    def enter(self) -> None:
        """Take a slot, waiting for one only while the service answers; ServiceBusy if not."""
        if self.slots.acquire(blocking=False):
            return
        if self.breaker.failing() or not self._join_waiters():
            raise ServiceBusy(self.service, BUSY_RETRY_AFTER)
        try:
            acquired = self.slots.acquire(timeout=self.slot_wait)
        finally:
            with self._lock:
                self._waiting -= 1
        if not acquired:
            raise ServiceBusy(self.service, BUSY_RETRY_AFTER)
        if self.breaker.failing():  # it went silent while we waited: do not add a call
            self.slots.release()
            raise ServiceBusy(self.service, BUSY_RETRY_AFTER)

    def leave(self) -> None:
        self.slots.release()

    def _join_waiters(self) -> bool:
        with self._lock:
            if self._waiting >= self.max_waiting:
                return False
            self._waiting += 1
            return True


class Bulkheads:
    """One :class:`Compartment` per service, made on first use."""

    def __init__(
        self,
        max_in_flight: int,
        failures: int,
        reset_seconds: float,
        slot_wait: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.slot_wait = slot_wait
        self.failures = failures
        self.reset_seconds = reset_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._compartments: dict[str, Compartment] = {}

    def compartment(self, service: str) -> Compartment:
        with self._lock:
            found = self._compartments.get(service)
            if found is None:
                breaker = Breaker(service, self.failures, self.reset_seconds, self.clock)
                found = Compartment(service, self.max_in_flight, breaker, self.slot_wait)
                self._compartments[service] = found
            return found

    def call(self, service: str, call: Callable[[], T], *, probe: bool = False) -> T:
        """``call()`` inside ``service``'s compartment; ServiceBusy when no slot is to be had
        (see the module's docstring) or its breaker is open. A ``probe`` (a readiness ping)
        goes through an open breaker, is never counted as a failure, and its answer closes
        the breaker: readiness reports the service itself, and notices first that it is
        back."""
        compartment = self.compartment(service)
        compartment.enter()
        try:
            breaker = compartment.breaker
            if probe:
                result = call()
                breaker.answered()
                return result
            wait = breaker.wait()
            if wait > 0:
                raise ServiceBusy(service, max(1, math.ceil(wait)))
            return breaker.watch(call)
        finally:
            compartment.leave()
