"""The SSE caps (gateway.streams): per user over every process, in total per process; a
stream gives its slot back however it ends; REST still answers while streams are at the cap."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from werkzeug.exceptions import ServiceUnavailable, TooManyRequests

from gateway.streams import LEASE_SECONDS, USER_KEY, StreamGate, guarded
from mesh.settings import Settings
from tests.unit.gateway_helpers import FakeClock, FakeRedis, assert_error, bearer

EVENTS = "/api/events/stream"


def make_gate(redis: FakeRedis, clock: FakeClock, total: int = 3, per_user: int = 2) -> StreamGate:
    return StreamGate(redis, total, per_user, retry_after=30, clock=clock)  # type: ignore[arg-type]


def test_a_user_gets_at_most_their_cap_and_others_are_not_refused(fake_redis, clock):
    gate = make_gate(fake_redis, clock, total=5)
    held = [gate.open(1), gate.open(1)]
    with pytest.raises(TooManyRequests) as refused:
        gate.open(1)
    assert refused.value.get_headers()[-1] == ("Retry-After", "30")
    assert gate.open_streams == 2  # the refused one took nothing
    gate.open(2)
    held[0].release()
    gate.open(1)


def test_the_process_total_is_capped_with_503(fake_redis, clock):
    gate = make_gate(fake_redis, clock, total=3, per_user=3)
    slots = [gate.open(user) for user in (1, 2, 3)]
    with pytest.raises(ServiceUnavailable) as refused:
        gate.open(4)
    assert ("Retry-After", "30") in refused.value.get_headers()
    assert fake_redis.zcard(USER_KEY.format(user_id=4)) == 0
    slots[1].release()
    gate.open(4)


def test_release_is_idempotent(fake_redis, clock):
    gate = make_gate(fake_redis, clock)
    slot = gate.open(1)
    slot.release()
    slot.release()
    assert gate.open_streams == 0
    assert fake_redis.zcard(USER_KEY.format(user_id=1)) == 0


def test_the_lease_of_a_dead_process_lapses_and_a_live_stream_renews_it(fake_redis, clock):
    gate = make_gate(fake_redis, clock, total=10)
    lost = gate.open(1)  # its process dies: never released, never renewed
    live = gate.open(1)
    body = guarded(live, iter(["a", "b"]))
    clock.now += LEASE_SECONDS - 1
    assert next(body) == "a"  # a chunk renews the live one's lease
    with pytest.raises(TooManyRequests):
        gate.open(1)

    clock.now += 2  # the lost lease has lapsed; the live one has not
    gate.open(1)
    assert fake_redis.zscore(USER_KEY.format(user_id=1), lost.id) is None
    assert fake_redis.zscore(USER_KEY.format(user_id=1), live.id) is not None


def test_a_body_closed_early_releases_its_slot_and_closes_what_it_wraps(fake_redis, clock):
    gate = make_gate(fake_redis, clock)
    closed: list[bool] = []

    def source():
        try:
            while True:
                yield ": keepalive\n\n"
        finally:
            closed.append(True)

    body = guarded(gate.open(1), source())
    next(body)
    body.close()  # what the server does when the client has gone
    assert closed == [True]
    assert gate.open_streams == 0


def test_a_body_that_fails_releases_its_slot(fake_redis, clock):
    gate = make_gate(fake_redis, clock)

    def failing():
        yield "x"
        raise RuntimeError("boom")

    body = guarded(gate.open(1), failing())
    next(body)
    with pytest.raises(RuntimeError):
        next(body)
    assert gate.open_streams == 0


# ----------------------------------------------------------------- through the app


def test_event_streams_past_the_user_cap_get_429_and_rest_still_answers(make_app, login):
    token = login(admin=True)["access_token"]
    app = make_app(SSE_MAX_PER_USER=1, SSE_MAX_TOTAL=4)
    client = app.test_client()
    first = client.get(EVENTS, headers=bearer(token), buffered=False)
    assert first.status_code == 200

    refused = client.get(EVENTS, headers=bearer(token))
    body = assert_error(refused, 429, "rate_limited")
    assert "at most 1 open event streams per user" in body["message"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert client.get("/api/users/me", headers=bearer(token)).status_code == 200

    first.close()  # never iterated: the response's close gives the slot back
    again = client.get(EVENTS, headers=bearer(token), buffered=False)
    assert again.status_code == 200
    again.close()


def test_event_streams_past_the_process_total_get_503(make_app, login):
    token = login(admin=True)["access_token"]
    app = make_app(SSE_MAX_PER_USER=5, SSE_MAX_TOTAL=1)
    client = app.test_client()
    first = client.get(EVENTS, headers=bearer(token), buffered=False)
    refused = client.get(EVENTS, headers=bearer(token))
    body = assert_error(refused, 503, "unavailable")
    assert "too many open event streams" in body["message"]
    assert "Retry-After" in refused.headers
    first.close()


def test_a_refused_type_filter_takes_no_slot(make_app, login):
    token = login(admin=True)["access_token"]
    app = make_app(SSE_MAX_PER_USER=1)
    client = app.test_client()
    assert client.get(f"{EVENTS}?types=nope", headers=bearer(token)).status_code == 422
    stream = client.get(EVENTS, headers=bearer(token), buffered=False)
    assert stream.status_code == 200
    stream.close()


def test_settings_refuse_streams_that_could_take_every_thread():
    assert Settings(gateway_threads=7, sse_max_total=6).sse_max_total == 6
    with pytest.raises(ValidationError, match="SSE_MAX_TOTAL must be below GATEWAY_THREADS"):
        Settings(gateway_threads=6, sse_max_total=6)


def test_metrics_count_the_open_streams(make_app, login):
    token = login(admin=True)["access_token"]
    client = make_app().test_client()

    def open_now() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        line = next(x for x in text.splitlines() if x.startswith("gateway_sse_streams_open "))
        return float(line.split()[1])

    stream = client.get(EVENTS, headers=bearer(token), buffered=False)
    assert open_now() == 1
    stream.close()
    assert open_now() == 0
