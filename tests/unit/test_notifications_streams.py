"""The user's notification stream writer and the e-mail status a stored document shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.notifications import USER_STREAM_MAXLEN, NotificationOut, user_stream_key
from contracts.users import UserOut, UserRegistered
from services.notifications import logic, messages
from services.notifications.streams import FIELD, UserStreams
from tests.unit.fake_redis_streams import FakeStreamsRedis

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def notification(user_id: int, n: int = 1) -> NotificationOut:
    return NotificationOut(
        id=f"{n:024x}",
        event_id=f"e{n}",
        type="order.created",
        user_id=user_id,
        order_id=7,
        title="Order #7 placed",
        body="We have your order #7 for 1 item(s).",
        created_at=AT,
        email_status="queued",
    )


def test_a_notification_goes_to_its_own_users_stream_as_json() -> None:
    redis = FakeStreamsRedis()
    streams = UserStreams(redis)  # type: ignore[arg-type]
    entry_id = streams.append(notification(3))
    [(found_id, fields)] = redis.xrange(user_stream_key(3))
    assert found_id == entry_id and set(fields) == {FIELD}
    assert NotificationOut.model_validate_json(fields[FIELD]) == notification(3)
    assert redis.xrange(user_stream_key(4)) == []


def test_the_stream_is_capped_at_its_window() -> None:
    redis = FakeStreamsRedis()
    streams = UserStreams(redis)  # type: ignore[arg-type]
    for n in range(USER_STREAM_MAXLEN + 5):
        streams.append(notification(3, n))
    entries = redis.xrange(user_stream_key(3))
    assert len(entries) == USER_STREAM_MAXLEN
    assert NotificationOut.model_validate_json(entries[-1][1][FIELD]).event_id == "e204"


def stored(**fields: Any) -> dict[str, Any]:
    doc = {
        "_id": "0" * 24,
        "event_id": "e1",
        "type": "user.registered",
        "userId": 3,
        "title": "Welcome",
        "body": "Your account is ready.",
        "createdAt": AT,
        "email": {"to": "ann@example.com", "subject": "Welcome", "text": "Hello"},
    }
    return {**doc, **fields}


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"emailQueued": False}, "queued"),  # stored, its e-mail not yet handed to Dramatiq
        ({"emailQueued": True, "emailSent": False}, "queued"),
        ({"emailQueued": True, "emailFailed": True}, "failed"),
        ({"emailSent": True, "emailFailed": True}, "sent"),  # replayed, then sent
        ({"emailSent": True}, "sent"),  # stored before the status existed
        ({"email": None}, None),
    ],
)
def test_the_email_status_follows_the_documents_flags(fields: dict[str, Any], status: str) -> None:
    assert logic.email_status(stored(**fields)) == status


def test_the_api_view_shows_when_it_was_sent_and_never_the_address() -> None:
    sent_at = datetime(2026, 1, 2, 3, 5, tzinfo=UTC)
    out = logic.to_out(stored(emailSent=True, emailSentAt=sent_at.replace(tzinfo=None)))
    assert (out.email_status, out.sent_at) == ("sent", sent_at)
    assert "ann@example.com" not in out.model_dump_json()


def test_the_welcome_shown_and_streamed_names_no_address() -> None:
    user = UserOut(id=3, email="ann@example.com", name="Ann", created_at=AT)
    doc = messages.welcome(UserRegistered(user_id=3), user)
    assert "ann@example.com" not in doc["title"] + doc["body"]
    assert doc["email"]["to"] == "ann@example.com"
