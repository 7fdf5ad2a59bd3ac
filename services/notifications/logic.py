"""What the notifications service does, as plain functions over MongoDB and the task queue."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from contracts.base import Event
from contracts.notifications import (
    EMAIL_QUEUE,
    SEND_EMAIL_ACTOR,
    ListRequest,
    NotificationOut,
    OrderNotificationsRequest,
)
from contracts.users import UserOut

log = logging.getLogger(__name__)

COLLECTION = "notifications"
LEGACY_INDEXES = ("event_id_1",)  # the unique event_id index, before one event could notify many


class Tasks(Protocol):
    def send(self, queue_name: str, actor_name: str, *args: Any) -> str: ...


def prepare(db: Database) -> None:
    """Indexes: one document per (event, recipient); a user's list and an order's, newest first."""
    collection = db[COLLECTION]
    existing = {index["name"] for index in collection.list_indexes()}
    for name in LEGACY_INDEXES:
        if name in existing:
            collection.drop_index(name)
    collection.create_index("key", unique=True)
    collection.create_index("event_id")
    collection.create_index([("userId", ASCENDING), ("createdAt", DESCENDING)])
    collection.create_index([("orderId", ASCENDING), ("createdAt", DESCENDING)])


def notification_key(event: Event, user_id: int) -> str:
    """The identity of one notification: an event notifies each user at most once."""
    return f"{event.event_id}-{user_id}"


def compose(event: Event, user: UserOut, title: str, body: str, **extra: Any) -> dict[str, Any]:
    """A notification document for ``user``, with its e-mail."""
    return {
        "type": event.type,
        "userId": user.id,
        "title": title,
        "body": body,
        "email": {
            "to": user.email,
            "subject": title,
            "text": f"Hello {user.name},\n\n{body}",
        },
        **extra,
    }


def record(db: Database, tasks: Tasks, event: Event, doc: dict[str, Any]) -> dict[str, Any]:
    """Store the notification once per (event, user) and queue its e-mail once.

    Safe to run again for the same event: the unique ``key`` keeps one document,
    and the e-mail is queued only while ``emailQueued`` is unset (the actor itself
    skips a message already sent). Only plain inserts, finds and ``$set`` are used,
    which every MongoDB-wire server we support implements.
    """
    key = notification_key(event, doc["userId"])
    fields = {"key": key, "event_id": str(event.event_id), "createdAt": datetime.now(UTC)}
    try:
        db[COLLECTION].insert_one({**doc, **fields, "emailQueued": False})
        log.info("notification stored", extra={"key": key, "type": event.type})
    except DuplicateKeyError:
        log.info("notification already stored", extra={"key": key})
    stored = db[COLLECTION].find_one({"key": key})
    if stored is None:
        raise LookupError(f"notification {key} vanished after insert")
    if stored.get("email") and not stored.get("emailQueued"):
        tasks.send(EMAIL_QUEUE, SEND_EMAIL_ACTOR, key)
        db[COLLECTION].update_one({"_id": stored["_id"]}, {"$set": {"emailQueued": True}})
    return dict(stored)


def to_out(doc: dict[str, Any]) -> NotificationOut:
    return NotificationOut(
        id=str(doc["_id"]),
        event_id=doc["event_id"],
        type=doc["type"],
        user_id=doc["userId"],
        order_id=doc.get("orderId"),
        title=doc["title"],
        body=doc["body"],
        created_at=doc["createdAt"],
    )


def _newest(db: Database, query: dict[str, Any], limit: int) -> list[NotificationOut]:
    cursor = (
        db[COLLECTION]
        .find(query)
        .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
        .limit(limit)
    )
    return [to_out(doc) for doc in cursor]


def list_for_user(db: Database, request: ListRequest) -> list[NotificationOut]:
    """A user's notifications, newest first."""
    return _newest(db, {"userId": request.user_id}, request.limit)


def for_order(db: Database, request: OrderNotificationsRequest) -> list[NotificationOut]:
    """An order's notifications, newest first (the caller checks who may see the order)."""
    return _newest(db, {"orderId": request.order_id}, request.limit)
