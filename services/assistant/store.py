"""Conversations in MongoDB: one document per conversation, one per turn.

Only inserts, finds on indexed fields and ``$set`` updates, which every MongoDB-wire server
we support implements (the embedded nx-27017 among them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from contracts.assistant import AskRequest, Conversation, ConversationSummary, Turn
from contracts.errors import NotFound

CONVERSATIONS = "assistant_conversations"
TURNS = "assistant_turns"
LIST_LIMIT = 50
TURNS_SHOWN = 200
TITLE_MAX = 200
NOT_FOUND = "conversation not found"


def prepare(db: Database) -> None:
    """Indexes: a conversation by id, a user's by recency, a conversation's turns in order."""
    conversations = db[CONVERSATIONS]
    conversations.create_index("conversation_id", unique=True)
    conversations.create_index([("user_id", ASCENDING), ("updated_at", DESCENDING)])
    db[TURNS].create_index([("conversation_id", ASCENDING), ("asked_at", ASCENDING)])


def _find(db: Database, conversation_id: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = db[CONVERSATIONS].find_one({"conversation_id": conversation_id})
    return found


def owned(db: Database, conversation_id: str, user_id: int) -> dict[str, Any]:
    """The conversation's document; NotFound unless ``user_id`` owns it."""
    doc = _find(db, conversation_id)
    if doc is None or doc["user_id"] != user_id:
        raise NotFound(NOT_FOUND)
    return doc


def continued(db: Database, request: AskRequest) -> dict[str, Any] | None:
    """The conversation a follow-up continues (None for a first question); NotFound when it
    is not the caller's, or of another course."""
    if request.conversation_id is None:
        return None
    doc = owned(db, request.conversation_id, request.user_id)
    if doc["course_id"] != request.course_id:
        raise NotFound(NOT_FOUND)
    return doc


def start(db: Database, conversation_id: str, request: AskRequest, now: datetime) -> None:
    """Store a new conversation, titled by its first question."""
    db[CONVERSATIONS].insert_one(
        {
            "conversation_id": conversation_id,
            "user_id": request.user_id,
            "course_id": request.course_id,
            "title": request.question[:TITLE_MAX],
            "created_at": now,
            "updated_at": now,
        }
    )


def add_turn(db: Database, conversation_id: str, user_id: int, turn: Turn) -> None:
    """Store a turn and mark the conversation active."""
    doc = {"conversation_id": conversation_id, "user_id": user_id, **turn.model_dump()}
    db[TURNS].insert_one(doc)
    db[CONVERSATIONS].update_one(
        {"conversation_id": conversation_id}, {"$set": {"updated_at": turn.answered_at}}
    )


def recent_turns(db: Database, conversation_id: str, count: int) -> list[Turn]:
    """The conversation's last ``count`` turns, oldest first."""
    if count <= 0:
        return []
    cursor = (
        db[TURNS]
        .find({"conversation_id": conversation_id})
        .sort([("asked_at", DESCENDING)])
        .limit(count)
    )
    return [_turn(doc) for doc in reversed(list(cursor))]


def list_for(db: Database, user_id: int) -> list[ConversationSummary]:
    """The user's conversations, most recently active first."""
    cursor = (
        db[CONVERSATIONS]
        .find({"user_id": user_id})
        .sort([("updated_at", DESCENDING), ("_id", DESCENDING)])
        .limit(LIST_LIMIT)
    )
    return [ConversationSummary(**_summary_fields(doc)) for doc in cursor]


def get(db: Database, conversation_id: str, user_id: int) -> Conversation:
    """A conversation and its turns (the first ``TURNS_SHOWN``); NotFound unless owned."""
    doc = owned(db, conversation_id, user_id)
    cursor = (
        db[TURNS]
        .find({"conversation_id": conversation_id})
        .sort([("asked_at", ASCENDING)])
        .limit(TURNS_SHOWN)
    )
    return Conversation(**_summary_fields(doc), turns=[_turn(turn) for turn in cursor])


def _summary_fields(doc: dict[str, Any]) -> dict[str, Any]:
    names = ("conversation_id", "course_id", "title", "created_at", "updated_at")
    return {name: doc[name] for name in names}


def _turn(doc: dict[str, Any]) -> Turn:
    return Turn(**{name: doc[name] for name in Turn.model_fields if name in doc})
