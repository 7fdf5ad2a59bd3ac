"""A nameko service whose handler fails on purpose, run by test_reliable_events.py."""

from __future__ import annotations

from typing import Any

from contracts.base import parse_event
from contracts.users import UserRegistered
from mesh.events import handle_event
from mesh.providers import CorrelationContext, Redis

POISON_USER = 13
OUTAGE_USER = 42  # fails as a server that is down would, while the key "flaky:down" exists


class FlakyService:
    name = "flaky"

    context = CorrelationContext()
    cache = Redis()

    @handle_event(UserRegistered)
    def on_user_registered(self, body: Any) -> None:
        event = parse_event(UserRegistered, body)
        attempts = self.cache.incr(f"flaky:attempts:{event.event_id}")
        if event.user_id == OUTAGE_USER and self.cache.exists("flaky:down"):
            raise ConnectionRefusedError(f"down, attempt {attempts}")
        if event.user_id == POISON_USER or (event.user_id != OUTAGE_USER and attempts < 2):
            raise RuntimeError(f"failure number {attempts}")
        self.cache.set(f"flaky:done:{event.event_id}", attempts)
