"""What the notifications service does, as plain functions over MongoDB and the task queue."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from contracts.base import Event, parse
from contracts.notifications import EMAIL_QUEUE, SEND_EMAIL_ACTOR, ListRequest, NotificationOut
from contracts.users import UserRegistered

log = logging.getLogger(__name__)

COLLECTION = "notifications"


class Tasks(Protocol):
    def send(self, queue_name: str, actor_name: str, *args: Any) -> str: ...


def prepare(db: Database) -> None:
    """Indexes: one document per event, and a user's list newest first."""
    db[COLLECTION].create_index("event_id", unique=True)
    db[COLLECTION].create_index([("userId", ASCENDING), ("createdAt", DESCENDING)])


def welcome(event: UserRegistered, user: dict[str, Any]) -> dict[str, Any]:
    """The notification document for a new user, with its e-mail."""
    title = "Welcome to the mesh"
    body = f"Hello {user['name']}, your account {user['email']} is ready."
    return {
        "type": event.type,
        "userId": event.user_id,
        "title": title,
        "body": body,
        "email": {"to": user["email"], "subject": title, "text": body},
    }


def record(db: Database, tasks: Tasks, event: Event, doc: dict[str, Any]) -> dict[str, Any]:
    """Store the notification once per event and queue its e-mail once.

    Safe to run again for the same event: the unique index on ``event_id`` keeps
    one document, and the e-mail is queued only while ``emailQueued`` is unset
    (the actor itself skips a message already sent). Only plain inserts, finds
    and ``$set`` are used, which every MongoDB-wire server we support implements.
    """
    event_id = str(event.event_id)
    try:
        db[COLLECTION].insert_one(
            {**doc, "event_id": event_id, "createdAt": datetime.now(UTC), "emailQueued": False}
        )
        log.info("notification stored", extra={"event_id": event_id, "type": event.type})
    except DuplicateKeyError:
        log.info("notification already stored", extra={"event_id": event_id})
    stored = db[COLLECTION].find_one({"event_id": event_id})
    if stored is None:
        raise LookupError(f"notification {event_id} vanished after insert")
    if stored.get("email") and not stored.get("emailQueued"):
        tasks.send(EMAIL_QUEUE, SEND_EMAIL_ACTOR, event_id)
        db[COLLECTION].update_one({"_id": stored["_id"]}, {"$set": {"emailQueued": True}})
    return dict(stored)


def to_out(doc: dict[str, Any]) -> dict[str, Any]:
    return NotificationOut(
        id=str(doc["_id"]),
        event_id=doc["event_id"],
        type=doc["type"],
        user_id=doc["userId"],
        title=doc["title"],
        body=doc["body"],
        created_at=doc["createdAt"],
    ).model_dump(mode="json")


def list_for_user(db: Database, user_id: Any, limit: Any = 20) -> list[dict[str, Any]]:
    """A user's notifications, newest first."""
    request = parse(ListRequest, {"user_id": user_id, "limit": limit})
    cursor = (
        db[COLLECTION]
        .find({"userId": request.user_id})
        .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
        .limit(request.limit)
    )
    return [to_out(doc) for doc in cursor]
