"""HTTP concerns: the one error format, body limits, correlation ids, rate limits."""

from __future__ import annotations

import json
import logging

import pytest

from contracts.errors import Unavailable
from gateway.deps import Services
from gateway.limits import account_key
from tests.unit.gateway_helpers import assert_error
from tests.unit.service_fakes import PASSWORD, FakeUsers

REGISTER = "/api/auth/register"
ADA = {"email": "ada@example.com", "password": PASSWORD, "name": "Ada"}


# ----------------------------------------------------------------- bodies


@pytest.mark.parametrize("raw", ['{"email": ', "[1, 2]", '"text"', "null", ""])
def test_malformed_or_non_object_json_is_400(client, raw):
    response = client.post(REGISTER, data=raw, content_type="application/json")
    assert_error(response, 400, "bad_request")


@pytest.mark.parametrize("path", ["/api/auth/login", REGISTER])
def test_too_deeply_nested_json_is_400_not_500(client, transport, path):
    response = client.post(path, data="[" * 30000, content_type="application/json")
    body = assert_error(response, 400, "bad_request")
    assert body["message"] == "the body is not valid JSON"
    assert transport.calls == []


def test_the_account_key_of_an_unparsable_body_is_the_ip(app):
    environ = {"REMOTE_ADDR": "10.3.3.3"}
    body = "[" * 30000
    with app.test_request_context(
        "/api/auth/login",
        method="POST",
        data=body,
        content_type="application/json",
        environ_base=environ,
    ):
        assert account_key() == "ip:10.3.3.3"


def test_non_json_content_type_is_415(client):
    response = client.post(REGISTER, data="email=a@b.c", content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")


def test_body_over_the_limit_is_413_and_names_it(make_app, fake_users):
    app = make_app(MAX_CONTENT_LENGTH=2048)
    body = json.dumps({"email": "a@example.com", "password": "x" * 4096, "name": "A"})
    response = app.test_client().post(REGISTER, data=body, content_type="application/json")
    error = assert_error(response, 413, "payload_too_large")
    assert "2048 bytes" in error["message"]
    assert fake_users.users == {}


def test_unknown_route_is_404_json(client):
    assert_error(client.get("/api/nothing-here"), 404, "not_found")


def test_wrong_method_is_405_json_with_allow(client):
    response = client.get("/api/auth/login")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


# ----------------------------------------------------------------- service failures


def test_an_error_from_a_service_has_no_details_unless_it_carries_some(client, fake_catalog):
    """An error crosses nameko's serialisation with its real arguments only: no "None"."""
    missing = client.get("/api/products/42")
    assert missing.get_json() == {"error": "not_found", "message": "product not found"}


def test_an_error_with_details_keeps_them_across_the_wire(client, fake_users, monkeypatch):
    from contracts.errors import Conflict

    def taken(_request):
        raise Conflict("e-mail already registered", {"field": "email"})

    monkeypatch.setattr(fake_users, "register", taken)
    body = assert_error(client.post(REGISTER, json=ADA), 409, "conflict")
    assert body == {
        "error": "conflict",
        "message": "e-mail already registered",
        "details": {"field": "email"},
    }


def test_unavailable_service_is_503(client, fake_users, monkeypatch):
    def down(_request):
        raise Unavailable("service users did not answer")

    monkeypatch.setattr(fake_users, "register", down)
    response = client.post(REGISTER, json=ADA)
    assert assert_error(response, 503, "unavailable")["message"] == "service users did not answer"


def test_unexpected_remote_error_is_500_without_a_traceback(client, fake_users, monkeypatch):
    def broken(_request):
        return 1 / 0  # crosses the wire as nameko's RemoteError

    monkeypatch.setattr(fake_users, "register", broken)
    response = client.post(REGISTER, json=ADA)
    data = assert_error(response, 500, "internal_error")
    assert "Zero" not in response.get_data(as_text=True)
    assert data == {"error": "internal_error", "message": "internal error"}


class BuggyUsers(FakeUsers):
    """A users client that fails inside the gateway's process, not behind RPC."""

    def register(self, request):
        raise KeyError("secret internals")


def test_local_bug_is_500_without_a_traceback(make_app, services):
    app = make_app(services_=Services(**{**vars(services), "users": BuggyUsers()}))
    response = app.test_client().post(REGISTER, json=ADA)
    assert_error(response, 500, "internal_error")
    assert "secret" not in response.get_data(as_text=True)


def test_answer_breaking_its_contract_is_500(client, fake_users, monkeypatch):
    monkeypatch.setattr(fake_users, "register", lambda _request: {"id": "not a number"})
    assert_error(client.post(REGISTER, json=ADA), 500, "internal_error")


def test_a_broken_answer_is_logged_without_the_values_it_carried(
    client, fake_users, monkeypatch, caplog
):
    monkeypatch.setattr(
        fake_users,
        "register",
        lambda _request: {
            "id": "not-a-number",
            "email": "leaked-secret@example.com",
            "is_admin": "secret-flag",
        },
    )
    with caplog.at_level(logging.ERROR):
        assert_error(client.post(REGISTER, json=ADA), 500, "internal_error")

    [record] = [r for r in caplog.records if r.name == "mesh.typed"]
    message = record.getMessage()
    assert "users.register" in message and "id" in message and "is_admin" in message
    for leaked in ("not-a-number", "leaked-secret", "secret-flag", "input_value"):
        assert leaked not in caplog.text


def test_redis_down_while_checking_a_token_is_503(client, login, fake_redis, monkeypatch):
    from redis.exceptions import ConnectionError

    token = login()["access_token"]

    def down(*_names):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(fake_redis, "exists", down)
    response = client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 503, "unavailable")


# ----------------------------------------------------------------- correlation id


def test_a_sane_request_id_is_echoed_and_is_the_services_correlation_id(client, transport):
    response = client.post(REGISTER, json=ADA, headers={"X-Request-ID": "abc-123_XYZ"})
    assert response.headers["X-Request-ID"] == "abc-123_XYZ"
    assert [(c.method, c.correlation_id) for c in transport.calls] == [("register", "abc-123_XYZ")]


@pytest.mark.parametrize(
    "bad", ["has space", "x" * 65, "semi;colon", "", "\u00e9t\u00e9", "tab\there"]
)
def test_an_insane_request_id_is_replaced_never_refused(client, bad):
    """The document says any string is accepted; the answer carries a sane one."""
    for path in ("/health", "/api/products"):
        response = client.get(path, headers={"X-Request-ID": bad})
        assert response.status_code == 200
        echoed = response.headers["X-Request-ID"]
        assert echoed != bad and len(echoed) == 32 and echoed.isalnum()


def test_errors_carry_a_request_id_too(client):
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["X-Request-ID"]


# ----------------------------------------------------------------- rate limits


def _login(client, email: str, ip: str = "10.0.0.1"):
    return client.post(
        "/api/auth/login",
        json={"email": email, "password": "wrong password"},
        environ_base={"REMOTE_ADDR": ip},
    )


def test_login_is_limited_per_account_with_retry_after(make_app):
    client = make_app(LOGIN_RATE_ACCOUNT_TOTAL="2/minute").test_client()
    assert _login(client, "ada@example.com", ip="10.0.0.1").status_code == 401
    assert _login(client, "ADA@example.com", ip="10.0.0.2").status_code == 401
    response = _login(client, "ada@example.com ", ip="10.0.0.3")
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert _login(client, "bob@example.com", ip="10.0.0.4").status_code == 401


def test_login_is_limited_per_ip(make_app):
    client = make_app(LOGIN_RATE_IP="3/minute").test_client()
    for n in range(3):
        assert _login(client, f"user{n}@example.com").status_code == 401
    response = _login(client, "user9@example.com")
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    assert _login(client, "user9@example.com", ip="10.9.9.9").status_code == 401


def test_register_is_limited_per_ip(make_app, fake_users):
    client = make_app(REGISTER_RATE_IP="2/minute").test_client()
    for n in range(2):
        body = {"email": f"u{n}@example.com", "password": PASSWORD, "name": "U"}
        assert client.post(REGISTER, json=body).status_code == 201
    body = {"email": "u9@example.com", "password": PASSWORD, "name": "U"}
    response = client.post(REGISTER, json=body)
    assert_error(response, 429, "rate_limited")
    assert "Retry-After" in response.headers
    assert len(fake_users.users) == 2


def test_every_api_route_shares_one_budget_per_ip(make_app):
    client = make_app(API_RATE_IP="3/minute").test_client()
    ip = {"REMOTE_ADDR": "10.1.1.1"}
    assert client.get("/api/products", environ_base=ip).status_code == 200
    assert client.get("/api/openapi.json", environ_base=ip).status_code == 200
    assert client.get("/api/orders", environ_base=ip).status_code == 401
    for path in ("/api/products", "/api/products/1", "/api/users/me", "/api/docs"):
        response = client.get(path, environ_base=ip)
        assert_error(response, 429, "rate_limited")
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    response = _login(client, "ada@example.com", ip="10.1.1.1")
    assert_error(response, 429, "rate_limited")
    assert client.get("/api/products", environ_base={"REMOTE_ADDR": "10.2.2.2"}).status_code == 200


def test_health_and_metrics_are_outside_the_api_budget(make_app):
    client = make_app(API_RATE_IP="1/minute").test_client()
    assert client.get("/api/products").status_code == 200
    assert client.get("/api/products").status_code == 429
    for _ in range(3):
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_an_unreachable_limit_store_is_a_503_and_health_still_answers(make_app):
    # Nothing listens on port 1: the API budget cannot be counted, so the API refuses
    # (fail closed) with the one 503; /health is outside the budget.
    client = make_app(
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0",
        RATELIMIT_STORAGE_OPTIONS={"socket_connect_timeout": 0.5},
    ).test_client()
    response = client.get("/api/products")
    assert_error(response, 503, "unavailable")
    assert "Retry-After" in response.headers
    assert client.get("/health").status_code == 200


def test_auth_routes_keep_their_stricter_limits_inside_the_budget(make_app):
    client = make_app(API_RATE_IP="100/minute", LOGIN_RATE_IP="2/minute").test_client()
    for n in range(2):
        assert _login(client, f"user{n}@example.com").status_code == 401
    assert_error(_login(client, "user9@example.com"), 429, "rate_limited")
    assert client.get("/api/products", environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code == 200
