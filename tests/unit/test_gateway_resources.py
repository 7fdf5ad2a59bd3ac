"""/api/users/me, /api/notifications and the /api/events/stream SSE relay."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from flask_jwt_extended import decode_token

from gateway.auth import FAMILY_REVOKED_KEY
from gateway.routes.events import relay, token_still_valid
from tests.unit.gateway_helpers import assert_error, bearer

DAY_ONE = datetime(2026, 1, 1, tzinfo=UTC)


# ----------------------------------------------------------------- users


def test_me_returns_the_callers_account(client, login, transport):
    token = login()["access_token"]
    response = client.get("/api/users/me", headers=bearer(token))
    assert response.status_code == 200
    data = response.get_json()
    assert data["id"] == 1 and data["email"] == "ada@example.com" and data["is_admin"] is False
    assert data["role"] == "student"
    assert (transport.calls[-1].method, transport.calls[-1].args) == ("get_user", (1,))


def test_me_of_a_deleted_account_is_404(client, login, fake_users):
    token = login()["access_token"]
    fake_users.users.clear()
    response = client.get("/api/users/me", headers=bearer(token))
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


# ----------------------------------------------------------------- notifications


def _notify_many(fake_notifications, count: int, user_id: int = 1) -> list:
    """``count`` notifications of the user, one a day: the last is the newest."""
    return [
        fake_notifications.add(user_id, f"title {n}", created_at=DAY_ONE + timedelta(days=n))
        for n in range(count)
    ]


def test_notifications_default_limit_is_20_newest_first(client, login, fake_notifications):
    token = login()["access_token"]
    made = _notify_many(fake_notifications, 25)
    _notify_many(fake_notifications, 3, user_id=2)  # someone else's
    response = client.get("/api/notifications", headers=bearer(token))
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert [n["id"] for n in items] == [n.id for n in reversed(made)][:20]


@pytest.mark.parametrize("limit", [1, 50])
def test_notifications_limit_bounds_are_accepted(client, login, fake_notifications, limit):
    token = login()["access_token"]
    made = _notify_many(fake_notifications, 60)
    response = client.get(f"/api/notifications?limit={limit}", headers=bearer(token))
    assert response.status_code == 200
    assert [n["id"] for n in response.get_json()["items"]] == [n.id for n in reversed(made)][:limit]


@pytest.mark.parametrize("limit", ["0", "51", "-3", "ten", "1.5"])
def test_notifications_limit_out_of_range_is_422(client, login, transport, limit):
    token = login()["access_token"]
    response = client.get(f"/api/notifications?limit={limit}", headers=bearer(token))
    assert assert_error(response, 422, "invalid_input")["details"][0]["field"] == "limit"
    assert transport.methods("notifications") == []


def test_notifications_need_a_token(client):
    assert client.get("/api/notifications").status_code == 401


# ----------------------------------------------------------------- events stream


def test_events_stream_needs_a_token(client):
    assert client.get("/api/events/stream").status_code == 401


def test_events_stream_is_forbidden_to_non_admins(client, login):
    token = login()["access_token"]
    response = client.get("/api/events/stream", headers=bearer(token))
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"


def test_events_stream_unknown_type_is_422(client, login):
    token = login(admin=True)["access_token"]
    response = client.get("/api/events/stream?types=user.registered,nope", headers=bearer(token))
    assert response.status_code == 422
    assert response.get_json()["details"] == [
        {"field": "types", "message": "unknown event type: nope"}
    ]


def test_admin_receives_a_published_event(client, login, fake_redis):
    token = login(admin=True)["access_token"]
    response = client.get(
        "/api/events/stream?types=user.registered", headers=bearer(token), buffered=False
    )
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Accel-Buffering"] == "no"
    chunks = iter(response.response)
    assert b": connected" in next(chunks)

    event = {"type": "user.registered", "event_id": "e1", "user_id": 7}
    assert fake_redis.publish("user.registered", json.dumps(event)) == 1
    message = next(chunks).decode()

    assert message == f"event: user.registered\ndata: {json.dumps(event)}\n\n"
    pubsub = fake_redis.subscribers[0]
    response.close()
    assert pubsub.closed and fake_redis.subscribers == []


def test_quiet_stream_sends_keepalive_comments(make_app, login, fake_redis):
    token = login(admin=True)["access_token"]  # same secret and stores: valid on any test app
    client = make_app(SSE_KEEPALIVE_SECONDS=0.0).test_client()
    response = client.get("/api/events/stream", headers=bearer(token), buffered=False)
    chunks = iter(response.response)
    next(chunks)
    assert next(chunks) == b": keepalive\n\n"
    response.close()
    assert fake_redis.subscribers == []


def test_closing_a_stream_never_started_still_unsubscribes(client, login, fake_redis):
    token = login(admin=True)["access_token"]
    response = client.get("/api/events/stream", headers=bearer(token), buffered=False)
    assert len(fake_redis.subscribers) == 1
    response.close()
    assert fake_redis.subscribers == []


def _family(app, token):
    with app.app_context():
        return decode_token(token)["fam"]


def _open_stream(client, token):
    response = client.get("/api/events/stream", headers=bearer(token), buffered=False)
    chunks = iter(response.response)
    assert b": connected" in next(chunks)
    return response, chunks


def test_a_stream_ends_before_the_next_event_once_its_token_is_revoked(
    app, client, login, fake_redis
):
    token = login(admin=True)["access_token"]
    family = _family(app, token)
    response, chunks = _open_stream(client, token)

    fake_redis.set(FAMILY_REVOKED_KEY.format(fam=family), "1", ex=60)
    assert fake_redis.publish("user.registered", "{}") == 1

    with pytest.raises(StopIteration):
        next(chunks)
    assert fake_redis.subscribers == []
    response.close()


def test_a_quiet_stream_ends_at_a_keepalive_once_its_token_is_revoked(
    app, make_app, login, fake_redis
):
    token = login(admin=True)["access_token"]
    family = _family(app, token)
    response, chunks = _open_stream(make_app(SSE_KEEPALIVE_SECONDS=0.0).test_client(), token)
    assert next(chunks) == b": keepalive\n\n"

    fake_redis.set(FAMILY_REVOKED_KEY.format(fam=family), "1", ex=60)

    with pytest.raises(StopIteration):
        next(chunks)
    assert fake_redis.subscribers == []
    response.close()


def test_the_relay_stops_once_the_token_expires(fake_redis, clock):
    claims = {"jti": "j1", "fam": "f1", "exp": clock.now + 30}
    pubsub = fake_redis.pubsub()
    pubsub.subscribe("user.registered")
    stream = relay(pubsub, 0.0, 0.0, token_still_valid(fake_redis, claims, clock))
    assert next(stream).startswith("retry: ")
    assert next(stream) == ": keepalive\n\n"

    clock.now += 30
    fake_redis.publish("user.registered", "{}")

    with pytest.raises(StopIteration):
        next(stream)
    assert pubsub.closed


def test_the_relay_stops_once_the_token_is_revoked(fake_redis, clock):
    claims = {"jti": "j1", "fam": "f1", "exp": clock.now + 30}
    pubsub = fake_redis.pubsub()
    pubsub.subscribe("user.registered")
    stream = relay(pubsub, 60.0, 0.0, token_still_valid(fake_redis, claims, clock))
    next(stream)
    fake_redis.publish("user.registered", "{}")
    assert next(stream) == "event: user.registered\ndata: {}\n\n"

    fake_redis.set(FAMILY_REVOKED_KEY.format(fam="f1"), "1", ex=60)
    fake_redis.publish("user.registered", "{}")

    with pytest.raises(StopIteration):
        next(stream)
    assert pubsub.closed
