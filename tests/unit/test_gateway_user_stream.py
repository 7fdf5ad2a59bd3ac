"""GET /api/notifications/stream on a real Redis (TEST_REDIS_URL): the entries the test XADDs
as the notifications service does are streamed to their user only, a reconnect with
Last-Event-ID misses nothing, a revoked token ends the stream, and the SSE caps hold."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from flask import Flask
from flask_jwt_extended import decode_token

from contracts.notifications import USER_STREAM_MAXLEN, NotificationOut, user_stream_key
from contracts.users import UserOut
from gateway.app import create_app
from gateway.auth import FAMILY_REVOKED_KEY, issue_pair
from gateway.deps import Services
from gateway.streams import LEASE_SECONDS, USER_KEY
from tests.conftest import address, answers, require
from tests.unit.gateway_helpers import TEST_CONFIG, FakeRpc, RecordingTransport

STREAM = "/api/notifications/stream"
CONFIG = {**TEST_CONFIG, "SSE_KEEPALIVE_SECONDS": 0.2, "SSE_POLL_SECONDS": 0.02}
_ids = itertools.count(int(time.time() * 1000) % 10**9 * 100)


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    host, port = address(redis_url, 6379)
    require(f"Redis at {host}:{port}", lambda: answers(host, port))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def app(store: redis.Redis, services: Services, fake_rpc: FakeRpc) -> Flask:
    return create_app(CONFIG, rpc=fake_rpc, redis=store, services=services)


@pytest.fixture
def services(transport: RecordingTransport) -> Services:
    return Services.over(transport)


class Viewer:
    """A user with an access token, and the Redis keys to clean up after them."""

    def __init__(self, app: Flask, store: redis.Redis) -> None:
        self.id = next(_ids)
        self.store = store
        user = UserOut(
            id=self.id,
            email=f"u{self.id}@example.com",
            name="U",
            role="student",
            created_at=datetime.now(UTC),
        )
        with app.app_context():
            self.token = issue_pair(user).access_token
            self.claims = decode_token(self.token)
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def store_notification(self, title: str, user_id: int | None = None) -> str:
        """XADD a notification to a user's stream (this viewer's by default), as the
        notifications service does; the entry's id."""
        owner = self.id if user_id is None else user_id
        notification = NotificationOut(
            id=uuid.uuid4().hex[:24],
            event_id=str(uuid.uuid4()),
            type="order.created",
            user_id=owner,
            order_id=1,
            title=title,
            body=f"{title} body",
            created_at=datetime.now(UTC),
        )
        entry_id: str = self.store.xadd(
            user_stream_key(owner),
            {"notification": notification.model_dump_json()},
            maxlen=USER_STREAM_MAXLEN,
            approximate=True,
        )
        return entry_id


@pytest.fixture
def viewers(app: Flask, store: redis.Redis) -> Iterator[Any]:
    made: list[Viewer] = []

    def make() -> Viewer:
        made.append(Viewer(app, store))
        return made[-1]

    yield make
    for viewer in made:
        store.delete(user_stream_key(viewer.id), USER_KEY.format(user_id=viewer.id))


class Reader:
    """The SSE messages of one streamed response, parsed as they arrive."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.chunks = iter(response.response)
        self.buffer = ""

    def messages(self, wanted: int, timeout: float = 5.0) -> list[dict[str, str]]:
        """The next ``wanted`` messages with data (comments and keepalives skipped)."""
        found: list[dict[str, str]] = []
        deadline = time.monotonic() + timeout
        while len(found) < wanted:
            assert time.monotonic() < deadline, f"only {found} arrived"
            found.extend(self._more())
        return found

    def quiet(self, seconds: float = 0.5) -> list[dict[str, str]]:
        """Every message with data during ``seconds`` (keepalives keep the reads short)."""
        found: list[dict[str, str]] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found.extend(self._more())
        return found

    def preamble(self) -> dict[str, str]:
        first = next(self.chunks).decode()
        return _fields(first)

    def _more(self) -> list[dict[str, str]]:
        self.buffer += next(self.chunks).decode()
        *blocks, self.buffer = self.buffer.split("\n\n")
        return [fields for fields in map(_fields, blocks) if "data" in fields]

    def close(self) -> None:
        self.response.close()


def _fields(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in block.splitlines():
        if line and not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return fields


def open_stream(app: Flask, viewer: Viewer, **headers: str) -> Reader:
    client = app.test_client()
    query = headers.pop("query", "")
    response = client.get(STREAM + query, headers={**viewer.headers, **headers}, buffered=False)
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "text/event-stream"
    return Reader(response)


def titles(messages: list[dict[str, str]]) -> list[str]:
    for message in messages:
        assert message["event"] == "notification"
    return [json.loads(m["data"])["title"] for m in messages]


def test_notifications_stored_after_connecting_are_streamed(app, viewers):
    ada = viewers()
    ada.store_notification("before")  # stored before: not sent (only new ones)
    reader = open_stream(app, ada)
    preamble = reader.preamble()
    assert preamble["retry"] == "3000"

    first = ada.store_notification("one")
    second = ada.store_notification("two")
    messages = reader.messages(2)

    assert titles(messages) == ["one", "two"]
    assert [m["id"] for m in messages] == [first, second]
    body = json.loads(messages[0]["data"])
    assert body["user_id"] == ada.id and "email" not in body
    reader.close()


def test_another_users_notifications_never_appear(app, viewers):
    ada, bob = viewers(), viewers()
    reader = open_stream(app, ada)
    reader.preamble()

    bob.store_notification("for bob")
    ada.store_notification("for ada")
    bob.store_notification("for bob again")

    assert titles(reader.messages(1)) == ["for ada"]
    assert reader.quiet(0.5) == []
    reader.close()


def test_a_reconnect_with_last_event_id_misses_nothing(app, viewers):
    ada = viewers()
    reader = open_stream(app, ada)
    reader.preamble()
    ada.store_notification("one")
    seen = reader.messages(1)
    reader.close()

    ada.store_notification("two")  # while disconnected
    ada.store_notification("three")
    again = open_stream(app, ada, **{"Last-Event-ID": seen[-1]["id"]})
    assert again.preamble()["id"] == seen[-1]["id"]
    ada.store_notification("four")  # live, after the backlog

    assert titles(again.messages(3)) == ["two", "three", "four"]
    again.close()


def test_the_first_message_sets_the_resume_point_even_when_nothing_came(app, viewers):
    ada = viewers()
    newest = ada.store_notification("old")
    reader = open_stream(app, ada)
    assert reader.preamble()["id"] == newest
    reader.close()

    ada.store_notification("while away")
    again = open_stream(app, ada, query=f"?last_event_id={newest}")
    assert titles(again.messages(1)) == ["while away"]
    again.close()


def test_an_empty_stream_resumes_from_its_start(app, viewers):
    ada = viewers()
    reader = open_stream(app, ada)
    assert reader.preamble()["id"] == "0-0"
    reader.close()
    ada.store_notification("first ever")
    again = open_stream(app, ada, **{"Last-Event-ID": "0-0"})
    assert titles(again.messages(1)) == ["first ever"]
    again.close()


@pytest.mark.parametrize("bad", ["abc", "1-2-3", "-1", "1" * 30 + "-0"])
def test_a_malformed_last_event_id_is_422(app, viewers, bad):
    ada = viewers()
    client = app.test_client()
    by_header = client.get(STREAM, headers={**ada.headers, "Last-Event-ID": bad})
    by_query = client.get(f"{STREAM}?last_event_id={bad}", headers=ada.headers)
    assert by_header.status_code == 422, by_header.get_json()
    assert by_header.get_json()["details"][0]["field"] == "Last-Event-ID"
    assert by_query.status_code == 422, by_query.get_json()
    assert by_query.get_json()["details"][0]["field"] == "last_event_id"


def test_the_stream_needs_an_access_token(app):
    assert app.test_client().get(STREAM).status_code == 401


def test_a_revoked_token_ends_the_stream(app, viewers, store):
    ada = viewers()
    reader = open_stream(app, ada)
    reader.preamble()
    ada.store_notification("seen")
    assert titles(reader.messages(1)) == ["seen"]

    family = FAMILY_REVOKED_KEY.format(fam=ada.claims["fam"])
    store.set(family, "1", ex=60)
    try:
        ada.store_notification("never sent")
        with pytest.raises(StopIteration):
            reader.quiet(2.0)
    finally:
        store.delete(family)
    assert store.zcard(USER_KEY.format(user_id=ada.id)) == 0  # its slot is back
    reader.close()


def test_a_malformed_entry_is_skipped(app, viewers, store):
    ada = viewers()
    reader = open_stream(app, ada)
    reader.preamble()
    store.xadd(user_stream_key(ada.id), {"notification": "{not json"})
    store.xadd(user_stream_key(ada.id), {"other": "field"})
    ada.store_notification("good")
    assert titles(reader.messages(1)) == ["good"]
    reader.close()


def test_a_user_past_the_cap_gets_429_until_a_stream_closes(store, services, fake_rpc, viewers):
    app = create_app(
        {**CONFIG, "SSE_MAX_PER_USER": 2}, rpc=fake_rpc, redis=store, services=services
    )
    ada, bob = viewers(), viewers()  # tokens of the same secret: valid on this app too
    first, second = open_stream(app, ada), open_stream(app, ada)

    held = USER_KEY.format(user_id=ada.id)
    assert store.zcard(held) == 2 and 0 < store.ttl(held) <= LEASE_SECONDS  # leases expire
    refused = app.test_client().get(STREAM, headers=ada.headers)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"  # two keepalives of 0.2 s, rounded up
    assert "at most 2 open event streams per user" in refused.get_json()["message"]
    other = open_stream(app, bob)  # another user is not refused

    # Closed last-opened first: in one thread, each open body holds its request context.
    other.close()
    second.close()
    third = open_stream(app, ada)
    third.close()
    first.close()
    assert store.zcard(USER_KEY.format(user_id=ada.id)) == 0
