"""Fakes that implement the real interfaces the logic uses."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from contracts.base import Event


class FakeCache:
    """The subset of redis.Redis the users logic uses."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def set(self, key: str, value: str, ex: int | None = None) -> bool:
        self.data[key] = value
        return True

    def delete(self, *keys: str) -> int:
        return sum(self.data.pop(k, None) is not None for k in keys)


class RecordingSink:
    """An event sink that keeps events added inside a session (the outbox's interface)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, session: Session, event: Event) -> None:
        self.events.append(event)


class RecordingTasks:
    """A task sender that records what would be enqueued."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, tuple[Any, ...]]] = []

    def send(self, queue_name: str, actor_name: str, *args: Any) -> str:
        self.sent.append((queue_name, actor_name, args))
        return f"msg-{len(self.sent)}"
