"""/api/notifications page by page, the e-mail's delivery status, an administrator's view of
one user's notifications (/api/users/{id}/notifications), and CORS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from gateway.app import settings_config
from mesh.settings import Settings
from tests.unit.gateway_helpers import assert_error, bearer

DAY_ONE = datetime(2026, 1, 1, tzinfo=UTC)
APP_ORIGIN = "https://app.example.com"


def _notify_many(fake_notifications, count: int, user_id: int = 1) -> list:
    """``count`` notifications of the user, one a day: the last is the newest."""
    return [
        fake_notifications.add(user_id, f"title {n}", created_at=DAY_ONE + timedelta(days=n))
        for n in range(count)
    ]


def _walk(client, path: str, headers: dict[str, str], limit: int) -> list[list[str]]:
    """The ids of every page, following ``next_before`` until it is null."""
    pages, url = [], f"{path}?limit={limit}"
    while True:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        pages.append([n["id"] for n in body["items"]])
        if body["next_before"] is None:
            return pages
        url = f"{path}?limit={limit}&before={body['next_before']}"


# ----------------------------------------------------------------- the caller's pages


def test_older_notifications_are_reached_page_by_page(client, login, fake_notifications):
    headers = bearer(login()["access_token"])
    made = _notify_many(fake_notifications, 55)  # more than the largest page
    _notify_many(fake_notifications, 3, user_id=2)
    pages = _walk(client, "/api/notifications", headers, 50)
    assert [len(p) for p in pages] == [50, 5]
    assert [i for p in pages for i in p] == [n.id for n in reversed(made)]


def test_the_first_page_keeps_its_shape_and_says_where_the_next_starts(
    client, login, fake_notifications
):
    headers = bearer(login()["access_token"])
    made = _notify_many(fake_notifications, 3)
    body = client.get("/api/notifications?limit=2", headers=headers).get_json()
    assert set(body) == {"items", "next_before"}
    assert body["next_before"] == made[1].id == body["items"][-1]["id"]
    last = client.get("/api/notifications?limit=3", headers=headers).get_json()
    assert last["next_before"] is None  # exactly a full page, and nothing after it


def test_someone_elses_notification_is_no_cursor(client, login, fake_notifications, transport):
    headers = bearer(login()["access_token"])
    _notify_many(fake_notifications, 2)
    [others] = _notify_many(fake_notifications, 1, user_id=2)
    response = client.get(f"/api/notifications?before={others.id}", headers=headers)
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("before", ["x", "0" * 23, "G" * 24, "0" * 25])
def test_a_malformed_cursor_is_422(client, login, transport, before):
    headers = bearer(login()["access_token"])
    response = client.get(f"/api/notifications?before={before}", headers=headers)
    assert assert_error(response, 422, "invalid_input")["details"][0]["field"] == "before"
    assert transport.methods("notifications") == []


def test_each_notification_shows_its_emails_delivery(client, login, fake_notifications):
    headers = bearer(login()["access_token"])
    sent_at = DAY_ONE + timedelta(minutes=1)
    fake_notifications.add(1, "queued", created_at=DAY_ONE)
    fake_notifications.add(1, "sent", created_at=DAY_ONE, email_status="sent", sent_at=sent_at)
    fake_notifications.add(1, "failed", created_at=DAY_ONE, email_status="failed")
    fake_notifications.add(1, "no e-mail", created_at=DAY_ONE, email_status=None)
    items = client.get("/api/notifications", headers=headers).get_json()["items"]
    shown = {n["title"]: (n["email_status"], n["sent_at"]) for n in items}
    assert shown == {
        "queued": ("queued", None),
        "sent": ("sent", "2026-01-01T00:01:00Z"),
        "failed": ("failed", None),
        "no e-mail": (None, None),
    }


# ----------------------------------------------------------------- an administrator's view


def test_an_admin_pages_through_one_users_notifications(client, login, fake_notifications):
    login()  # Ada is user 1
    admin = bearer(login("root@example.com", admin=True)["access_token"])
    made = _notify_many(fake_notifications, 5, user_id=1)
    _notify_many(fake_notifications, 2, user_id=2)
    pages = _walk(client, "/api/users/1/notifications", admin, 2)
    assert pages == [[n.id for n in reversed(made)][i : i + 2] for i in (0, 2, 4)]


def test_only_admins_see_a_users_notifications(client, login, fake_notifications, transport):
    ada = bearer(login()["access_token"])
    _notify_many(fake_notifications, 1)
    for path in ("/api/users/1/notifications", "/api/users/2/notifications"):
        assert_error(client.get(path, headers=ada), 403, "forbidden")
    assert transport.methods("notifications") == []
    assert client.get("/api/users/1/notifications").status_code == 401


def test_an_unknown_users_notifications_are_404(client, login, transport):
    admin = bearer(login("root@example.com", admin=True)["access_token"])
    assert_error(client.get("/api/users/99/notifications", headers=admin), 404, "not_found")
    assert transport.methods("notifications") == []


# ----------------------------------------------------------------- CORS


@pytest.fixture
def cors_client(make_app):
    app = make_app(CORS_ORIGINS=[APP_ORIGIN, "http://localhost:5173"])
    with app.test_client() as test_client:
        yield test_client


def test_an_allowed_origin_may_read_the_answer_and_its_headers(cors_client):
    response = cors_client.get("/api/products", headers={"Origin": APP_ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"X-Cache", "Location", "Retry-After", "Idempotency-Key"}
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Origin" in response.headers["Vary"]


def test_an_error_answer_carries_cors_too(cors_client):
    response = cors_client.get("/api/notifications", headers={"Origin": APP_ORIGIN})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN


def test_another_origin_gets_no_cors_headers(cors_client):
    response = cors_client.get("/api/products", headers={"Origin": "https://evil.example.com"})
    assert response.status_code == 200
    assert not any(h.startswith("Access-Control-") for h, _ in response.headers.items())


def test_a_preflight_allows_the_apis_request_headers(cors_client):
    response = cors_client.options(
        "/api/orders",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    allowed = {
        h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
    }
    assert allowed == {"authorization", "content-type", "idempotency-key"}
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Max-Age"] == "600"


def test_a_preflight_from_another_origin_is_not_allowed(cors_client):
    response = cors_client.options(
        "/api/orders",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in response.headers


def test_without_origins_no_cors_headers_are_sent(client):
    """The default (CORS_ORIGINS empty): a browser refuses any cross-origin answer."""
    response = client.get("/api/products", headers={"Origin": APP_ORIGIN})
    assert response.status_code == 200
    assert not any(h.startswith("Access-Control-") for h, _ in response.headers.items())
    preflight = client.options(
        "/api/orders", headers={"Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_origins_are_read_from_a_comma_separated_setting(monkeypatch):
    monkeypatch.setenv("CORS_ORIGINS", f" {APP_ORIGIN} , http://localhost:5173,")
    assert settings_config(Settings())["CORS_ORIGINS"] == [APP_ORIGIN, "http://localhost:5173"]
    monkeypatch.delenv("CORS_ORIGINS")
    assert settings_config(Settings())["CORS_ORIGINS"] == []


@pytest.mark.parametrize("origins", ["app.example.com", "https://app.example.com/", "ftp://x"])
def test_a_cors_origin_that_is_not_an_origin_is_refused(origins):
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        Settings(cors_origins=origins)
