"""Fakes that implement the real interfaces the logic uses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction

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
    """An event sink that keeps the events of committed transactions only, as the outbox does.

    Events wait in the session until it commits; a rollback (or a transaction that ends
    without a commit) drops them.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, session: Session, event: Event) -> None:
        if not sa_event.contains(session, "after_commit", self._committed):
            sa_event.listen(session, "after_commit", self._committed)
            sa_event.listen(session, "after_transaction_end", self._ended)
        session.connection()  # joins (or begins) the transaction, as the outbox's INSERT does
        self._pending(session).append(event)

    def _pending(self, session: Session) -> list[Event]:
        pending: list[Event] = session.info.setdefault(("recording_sink", id(self)), [])
        return pending

    def _committed(self, session: Session) -> None:
        self.events.extend(self._pending(session))
        self._pending(session).clear()

    def _ended(self, session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # the outermost transaction: nothing more can commit
            self._pending(session).clear()


class RecordingTasks:
    """A task sender that records what would be enqueued."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, tuple[Any, ...]]] = []

    def send(self, queue_name: str, actor_name: str, *args: Any) -> str:
        self.sent.append((queue_name, actor_name, args))
        return f"msg-{len(self.sent)}"
