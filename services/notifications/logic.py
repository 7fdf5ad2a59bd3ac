"""What the notifications service does, as plain functions over MongoDB and the task queue."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from contracts.base import Event
from contracts.errors import NotFound
from contracts.notifications import (
    EMAIL_QUEUE,
    SEND_EMAIL_ACTOR,
    EmailStatus,
    ListRequest,
    NotificationOut,
    NotificationPage,
    OrderNotificationsRequest,
)
from services.notifications import recipients
from services.notifications.recipients import Addressee

log = logging.getLogger(__name__)

COLLECTION = "notifications"
BEFORE_NOT_FOUND = "notification not found (before)"
LEGACY_INDEXES = ("event_id_1",)  # the unique event_id index, before one event could notify many


class Tasks(Protocol):
    def send(self, queue_name: str, actor_name: str, *args: Any) -> str: ...


class Streams(Protocol):
    """Each user's live notification stream (``services.notifications.streams.UserStreams``)."""

    def append(self, notification: NotificationOut) -> str: ...


@dataclass(frozen=True)
class Outlets:
    """Where a stored notification goes next: the e-mail queue and its user's live stream."""

    tasks: Tasks
    streams: Streams


def prepare(db: Database) -> None:
    """Indexes: one document per (event, recipient); a user's list and an order's, newest first;
    the read model of recipients (:mod:`services.notifications.recipients`)."""
    collection = db[COLLECTION]
    existing = {index["name"] for index in collection.list_indexes()}
    for name in LEGACY_INDEXES:
        if name in existing:
            collection.drop_index(name)
    collection.create_index("key", unique=True)
    collection.create_index("event_id")
    collection.create_index([("userId", ASCENDING), ("createdAt", DESCENDING)])
    collection.create_index([("orderId", ASCENDING), ("createdAt", DESCENDING)])
    recipients.prepare(db)


def notification_key(event: Event, user_id: int) -> str:
    """The identity of one notification: an event notifies each user at most once."""
    return f"{event.event_id}-{user_id}"


def compose(event: Event, user: Addressee, title: str, body: str, **extra: Any) -> dict[str, Any]:
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


def record(db: Database, outlets: Outlets, event: Event, doc: dict[str, Any]) -> dict[str, Any]:
    """Store the notification once per (event, user), add it to its user's live stream and
    queue its e-mail.

    Safe to run again for the same event: the unique ``key`` keeps one document; it is
    added to the stream until ``streamed`` is set and the e-mail queued until
    ``emailQueued`` is (the actor itself skips a message already sent). A failure in
    between raises, so the event is retried and finishes what is missing: the stream is
    at-least-once (a client tells a repeat by the notification's id). Only plain inserts,
    finds and ``$set`` are used, which every MongoDB-wire server we support implements.
    The first delivery, the common case, costs two operations: the insert and one ``$set``.
    """
    key = notification_key(event, doc["userId"])
    fields = {"key": key, "event_id": str(event.event_id), "createdAt": _stored_now()}
    stored: dict[str, Any] | None = {
        **doc,
        **fields,
        "streamed": False,
        "emailQueued": False,
        "emailSent": False,
    }
    try:
        db[COLLECTION].insert_one(stored)  # sets stored["_id"]
        log.info("notification stored", extra={"key": key, "type": event.type})
    except DuplicateKeyError:
        log.info("notification already stored", extra={"key": key})
        stored = db[COLLECTION].find_one({"key": key})
    if stored is None:
        raise LookupError(f"notification {key} vanished after insert")
    _pass_on(db, outlets, key, stored)
    return dict(stored)


def _stored_now() -> datetime:
    """Now, as MongoDB will give it back (milliseconds): the streamed copy, made from the
    document before it is read again, must equal what the API reads later."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _pass_on(db: Database, outlets: Outlets, key: str, stored: dict[str, Any]) -> None:
    """Stream and queue what was not yet; then mark both at once."""
    done: dict[str, bool] = {}
    if not stored.get("streamed"):
        outlets.streams.append(to_out(stored))
        done["streamed"] = True
    if stored.get("email") and not stored.get("emailQueued"):
        outlets.tasks.send(EMAIL_QUEUE, SEND_EMAIL_ACTOR, key)
        done["emailQueued"] = True
    if done:
        db[COLLECTION].update_one({"_id": stored["_id"]}, {"$set": done})
        stored.update(done)


def email_status(doc: dict[str, Any]) -> EmailStatus | None:
    """The e-mail's delivery, from the document's flags; None for a notification without one."""
    if not doc.get("email"):
        return None
    if doc.get("emailSent"):
        return "sent"
    return "failed" if doc.get("emailFailed") else "queued"


def to_out(doc: dict[str, Any]) -> NotificationOut:
    """The API's view of a stored notification (never its e-mail address)."""
    return NotificationOut(
        id=str(doc["_id"]),
        event_id=doc["event_id"],
        type=doc["type"],
        user_id=doc["userId"],
        order_id=doc.get("orderId"),
        title=doc["title"],
        body=doc["body"],
        created_at=doc["createdAt"],
        email_status=email_status(doc),
        sent_at=doc.get("emailSentAt"),
    )


def _newest(db: Database, query: dict[str, Any], limit: int) -> list[NotificationOut]:
    cursor = (
        db[COLLECTION]
        .find(query)
        .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
        .limit(limit)
    )
    return [to_out(doc) for doc in cursor]


def list_for_user(db: Database, request: ListRequest) -> NotificationPage:
    """A page of a user's notifications, newest first, after ``request.before`` if given."""
    query: dict[str, Any] = {"userId": request.user_id}
    if request.before is not None:
        query.update(_older_than(db, request.user_id, request.before))
    found = _newest(db, query, request.limit + 1)  # one more tells whether a next page exists
    items = found[: request.limit]
    more = len(found) > request.limit
    return NotificationPage(items=items, next_before=items[-1].id if more else None)


def _older_than(db: Database, user_id: int, before: str) -> dict[str, Any]:
    """The condition "after this notification in newest-first order"; the id must be the
    user's own notification (NotFound otherwise: someone else's is no cursor)."""
    anchor = db[COLLECTION].find_one({"_id": ObjectId(before), "userId": user_id})
    if anchor is None:
        raise NotFound(BEFORE_NOT_FOUND)
    at, oid = anchor["createdAt"], anchor["_id"]
    return {"$or": [{"createdAt": {"$lt": at}}, {"createdAt": at, "_id": {"$lt": oid}}]}


def for_order(db: Database, request: OrderNotificationsRequest) -> list[NotificationOut]:
    """An order's notifications, newest first (the caller checks who may see the order)."""
    return _newest(db, {"orderId": request.order_id}, request.limit)
