"""/api/orders: placing, listing, owner-only reads (cached), cancel, admin statuses, and the
order's notifications."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.catalog import ProductPatch
from contracts.errors import NotFound
from tests.unit.gateway_helpers import assert_error, bearer

ORDERS = "/api/orders"


def _notify(fake_notifications, n: int, order_id: int, user_id: int = 1):
    """The n-th notification of an order (a later n is newer)."""
    return fake_notifications.add(
        user_id,
        f"order {order_id}",
        "body",
        order_id=order_id,
        kind="order.created",
        created_at=datetime(2026, 1, n, tzinfo=UTC),
    )


def _orders_calls(transport) -> list[str]:
    return transport.methods("orders")


@pytest.fixture
def ada(login) -> dict[str, str]:
    return bearer(login("ada@example.com")["access_token"])  # user 1


@pytest.fixture
def bob(login, ada) -> dict[str, str]:
    return bearer(login("bob@example.com")["access_token"])  # user 2


@pytest.fixture
def admin(login, bob) -> dict[str, str]:
    return bearer(login("root@example.com", admin=True)["access_token"])  # user 3


@pytest.fixture
def lamp(fake_catalog):
    return fake_catalog.add("Lamp", price_cents=1000, stock=5)


def _stock(fake_catalog) -> int:
    return fake_catalog.products[1].stock


@pytest.fixture
def order(client, ada, lamp) -> dict:
    """Ada's order of 2 lamps (order 1)."""
    response = client.post(ORDERS, json={"product_id": lamp.id, "quantity": 2}, headers=ada)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# ----------------------------------------------------------------- place


def test_placing_an_order_is_201_for_the_token_identity(order, fake_orders, fake_catalog):
    assert order["user_id"] == 1 and order["quantity"] == 2 and order["total"] == 2000
    assert order["status"] == "pending"
    stored = fake_orders.orders[order["id"]]
    assert (stored.user_id, stored.product_id, stored.quantity) == (1, 1, 2)
    assert _stock(fake_catalog) == 3
    # The gateway keyed the attempt itself, so that a lost answer can be settled by a retry.
    assert list(fake_orders.keys.values()) == [order["id"]]


def test_an_idempotency_key_makes_a_retry_return_the_same_order(
    client, ada, lamp, fake_orders, fake_catalog
):
    body, headers = {"product_id": 1, "quantity": 1}, {**ada, "Idempotency-Key": "try-42"}
    first = client.post(ORDERS, json=body, headers=headers)
    again = client.post(ORDERS, json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json()["id"] == first.get_json()["id"]
    assert fake_orders.keys == {(1, "try-42"): first.get_json()["id"]}
    assert len(fake_orders.orders) == 1 and _stock(fake_catalog) == 4


def test_an_idempotency_key_reused_for_another_order_is_409(client, ada, lamp, fake_orders):
    headers = {**ada, "Idempotency-Key": "try-42"}
    client.post(ORDERS, json={"product_id": 1, "quantity": 1}, headers=headers)
    response = client.post(ORDERS, json={"product_id": 1, "quantity": 2}, headers=headers)
    assert_error(response, 409, "conflict")
    assert len(fake_orders.orders) == 1


@pytest.mark.parametrize("key", ["", "x" * 65, "nul\x01byte"])
def test_a_malformed_idempotency_key_is_422(client, ada, lamp, fake_orders, key):
    headers = {**ada, "Idempotency-Key": key}
    response = client.post(ORDERS, json={"product_id": 1, "quantity": 1}, headers=headers)
    assert_error(response, 422, "invalid_input")
    assert fake_orders.orders == {}


def test_placing_sets_location(client, ada, lamp):
    response = client.post(ORDERS, json={"product_id": 1, "quantity": 1}, headers=ada)
    assert response.headers["Location"] == "/api/orders/1"


def test_placing_invalidates_the_products_cached_stock(client, ada, lamp):
    assert client.get("/api/products/1").get_json()["stock"] == 5
    assert client.get("/api/products/1").headers["X-Cache"] == "HIT"
    client.post(ORDERS, json={"product_id": 1, "quantity": 2}, headers=ada)
    after = client.get("/api/products/1")
    assert after.headers["X-Cache"] == "MISS" and after.get_json()["stock"] == 3


def test_placing_needs_a_token(client, lamp, fake_orders):
    assert_error(client.post(ORDERS, json={"product_id": 1, "quantity": 1}), 401, "unauthorized")
    assert fake_orders.orders == {}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"product_id", "quantity"}),
        ({"product_id": 1}, {"quantity"}),
        ({"product_id": 1, "quantity": 0}, {"quantity"}),
        ({"product_id": 1, "quantity": -1}, {"quantity"}),
        ({"product_id": 1, "quantity": 101}, {"quantity"}),
        ({"product_id": 1, "quantity": 10**40}, {"quantity"}),
        ({"product_id": 1, "quantity": "2"}, {"quantity"}),
        ({"product_id": 1, "quantity": 2.5}, {"quantity"}),
        ({"product_id": 1, "quantity": True}, {"quantity"}),
        ({"product_id": 1.5, "quantity": 1}, {"product_id"}),
        ({"product_id": 1, "quantity": None}, {"quantity"}),
        ({"product_id": 0, "quantity": 1}, {"product_id"}),
        ({"product_id": 2**63, "quantity": 1}, {"product_id"}),
        ({"product_id": "1", "quantity": 1}, {"product_id"}),
        ({"product_id": 1, "quantity": 1, "user_id": 2}, {"user_id"}),
    ],
)
def test_placing_with_bad_fields_is_422(client, ada, lamp, fake_orders, body, fields):
    details = assert_error(client.post(ORDERS, json=body, headers=ada), 422, "invalid_input")
    assert {d["field"] for d in details["details"]} == fields
    assert fake_orders.orders == {}


def test_a_whole_number_written_with_a_fraction_is_an_integer(client, ada, lamp, fake_orders):
    """JSON (and the document's JSON Schema) make no difference between 2.0 and 2."""
    raw = '{"product_id": 1.0, "quantity": 2e0}'
    response = client.post(ORDERS, data=raw, content_type="application/json", headers=ada)
    assert response.status_code == 201, response.get_json()
    assert (fake_orders.orders[1].product_id, fake_orders.orders[1].quantity) == (1, 2)


@pytest.mark.parametrize("raw", ['{"product_id": 1,', "[]", "7", "null", '{"quantity": NaN}'])
def test_placing_with_malformed_json_is_400(client, ada, raw):
    response = client.post(ORDERS, data=raw, content_type="application/json", headers=ada)
    assert_error(response, 400, "bad_request")


def test_placing_an_unknown_product_is_404_and_too_many_is_409(client, ada, lamp):
    assert_error(
        client.post(ORDERS, json={"product_id": 9, "quantity": 1}, headers=ada), 404, "not_found"
    )
    assert_error(
        client.post(ORDERS, json={"product_id": 1, "quantity": 6}, headers=ada), 409, "conflict"
    )


# ----------------------------------------------------------------- list


def test_listing_shows_my_orders_newest_first(client, ada, bob, lamp):
    for who in (ada, bob, ada):
        client.post(ORDERS, json={"product_id": 1, "quantity": 1}, headers=who)
    page = client.get(ORDERS, headers=ada).get_json()
    assert [o["id"] for o in page["items"]] == [3, 1]
    assert (page["limit"], page["offset"]) == (20, 0)


def test_listing_passes_paging(client, ada, lamp):
    for _ in range(3):
        client.post(ORDERS, json={"product_id": 1, "quantity": 1}, headers=ada)
    page = client.get(f"{ORDERS}?limit=1&offset=1", headers=ada).get_json()
    assert ([o["id"] for o in page["items"]], page["limit"], page["offset"]) == ([2], 1, 1)
    assert client.get(f"{ORDERS}?limit=100&offset=5", headers=ada).get_json()["items"] == []


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("limit=0", {"limit"}),
        ("limit=101", {"limit"}),
        ("limit=many", {"limit"}),
        ("offset=-1", {"offset"}),
        ("offset=2.5", {"offset"}),
        ("offset=10000000", {"offset"}),
        ("limit=&offset=", {"limit", "offset"}),
    ],
)
def test_listing_with_bad_paging_is_422(client, ada, transport, query, fields):
    body = assert_error(client.get(f"{ORDERS}?{query}", headers=ada), 422, "invalid_input")
    assert {d["field"] for d in body["details"]} == fields
    assert _orders_calls(transport) == []


def test_listing_needs_a_token(client):
    assert_error(client.get(ORDERS), 401, "unauthorized")


# ----------------------------------------------------------------- one order (cached, owner-only)


def test_the_owner_reads_an_order_miss_then_hit(client, ada, order, transport, fake_redis):
    first = client.get(f"{ORDERS}/1", headers=ada)
    second = client.get(f"{ORDERS}/1", headers=ada)
    assert first.status_code == second.status_code == 200
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert first.get_json() == second.get_json() == order
    assert _orders_calls(transport).count("get_order") == 1  # the hit did not ask
    assert 0 < fake_redis.ttl("gw:cache:order:1") <= 300


def test_another_user_gets_404_from_the_service(client, bob, order, transport, fake_redis):
    response = client.get(f"{ORDERS}/1", headers=bob)
    unknown = client.get(f"{ORDERS}/99", headers=bob)
    assert_error(response, 404, "not_found")
    assert response.get_json() == {"error": "not_found", "message": "order 1 not found"}
    assert unknown.get_json() == {"error": "not_found", "message": "order 99 not found"}
    assert _orders_calls(transport).count("get_order") == 2
    assert fake_redis.get("gw:cache:order:1") is None  # an error is never cached


def test_another_user_gets_404_when_the_order_is_cached(client, ada, bob, order, transport):
    assert client.get(f"{ORDERS}/1", headers=ada).headers["X-Cache"] == "MISS"
    calls_before = len(transport.calls)

    response = client.get(f"{ORDERS}/1", headers=bob)

    assert_error(response, 404, "not_found")
    assert response.get_json() == {"error": "not_found", "message": "order 1 not found"}
    assert "X-Cache" not in response.headers
    assert len(transport.calls) == calls_before  # decided from the cache, in the gateway
    assert order["user_id"] != 2


def test_an_admin_reads_any_order_and_the_owner_still_sees_it(client, ada, admin, order):
    response = client.get(f"{ORDERS}/1", headers=admin)
    assert response.status_code == 200 and response.headers["X-Cache"] == "MISS"
    assert response.get_json() == order
    assert client.get(f"{ORDERS}/1", headers=ada).headers["X-Cache"] == "HIT"


def test_an_order_answer_for_someone_else_is_refused_even_from_the_service(
    client, bob, order, fake_orders, monkeypatch
):
    stored = fake_orders.orders[1]
    monkeypatch.setattr(fake_orders, "get_order", lambda *_args: stored)  # a buggy service
    assert_error(client.get(f"{ORDERS}/1", headers=bob), 404, "not_found")


def test_a_not_found_from_the_service_is_reworded_to_the_one_404(
    client, bob, order, fake_orders, monkeypatch
):
    def not_found(*_args):
        raise NotFound("no order 1 for user 2")  # must not tell "exists, not yours" apart

    monkeypatch.setattr(fake_orders, "get_order", not_found)
    body = assert_error(client.get(f"{ORDERS}/1", headers=bob), 404, "not_found")
    assert body["message"] == "order 1 not found"


@pytest.mark.parametrize("raw", ["0", "-1", "one", "9223372036854775808"])
def test_impossible_order_ids_are_404_without_rpc(client, ada, transport, raw):
    assert_error(client.get(f"{ORDERS}/{raw}", headers=ada), 404, "not_found")
    assert_error(client.post(f"{ORDERS}/{raw}/cancel", headers=ada), 404, "not_found")
    assert_error(client.get(f"{ORDERS}/{raw}/notifications", headers=ada), 404, "not_found")
    assert _orders_calls(transport) == []


def test_reading_an_order_needs_a_token(client, order):
    assert_error(client.get(f"{ORDERS}/1"), 401, "unauthorized")


# ----------------------------------------------------------------- cancel


def test_cancel_invalidates_the_order_and_the_product(client, ada, order, fake_orders):
    client.get(f"{ORDERS}/1", headers=ada)
    assert client.get("/api/products/1").get_json()["stock"] == 3
    assert client.get(f"{ORDERS}/1", headers=ada).headers["X-Cache"] == "HIT"

    response = client.post(f"{ORDERS}/1/cancel", headers=ada)

    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"
    assert fake_orders.orders[1].status == "cancelled"
    after = client.get(f"{ORDERS}/1", headers=ada)
    assert after.headers["X-Cache"] == "MISS" and after.get_json()["status"] == "cancelled"
    product = client.get("/api/products/1")
    assert product.headers["X-Cache"] == "MISS" and product.get_json()["stock"] == 5


def test_cancel_twice_is_409(client, ada, order):
    assert client.post(f"{ORDERS}/1/cancel", headers=ada).status_code == 200
    assert_error(client.post(f"{ORDERS}/1/cancel", headers=ada), 409, "conflict")


def test_another_user_cannot_cancel(client, ada, bob, order, fake_orders, fake_catalog):
    client.get(f"{ORDERS}/1", headers=ada)  # cached
    assert_error(client.post(f"{ORDERS}/1/cancel", headers=bob), 404, "not_found")
    assert fake_orders.orders[1].status == "pending" and _stock(fake_catalog) == 3
    assert client.get(f"{ORDERS}/1", headers=ada).get_json()["status"] == "pending"


def test_an_admin_cancels_any_order(client, admin, order, fake_orders, fake_catalog):
    assert client.post(f"{ORDERS}/1/cancel", headers=admin).status_code == 200
    assert fake_orders.orders[1].status == "cancelled" and _stock(fake_catalog) == 5


# ----------------------------------------------------------------- admin status changes


def test_admin_moves_the_status_and_invalidates(client, ada, admin, order, fake_orders):
    assert client.get(f"{ORDERS}/1", headers=ada).get_json()["status"] == "pending"
    response = client.patch(f"{ORDERS}/1", json={"status": "paid"}, headers=admin)
    assert response.status_code == 200 and response.get_json()["status"] == "paid"
    assert fake_orders.orders[1].status == "paid"
    after = client.get(f"{ORDERS}/1", headers=ada)
    assert after.headers["X-Cache"] == "MISS" and after.get_json()["status"] == "paid"


def test_admin_cancel_by_status_returns_stock_and_invalidates_the_product(client, admin, order):
    assert client.get("/api/products/1").get_json()["stock"] == 3
    client.patch(f"{ORDERS}/1", json={"status": "cancelled"}, headers=admin)
    product = client.get("/api/products/1")
    assert product.headers["X-Cache"] == "MISS" and product.get_json()["stock"] == 5


def test_status_changes_are_for_admins_only(client, ada, order, fake_orders):
    assert_error(
        client.patch(f"{ORDERS}/1", json={"status": "paid"}, headers=ada), 403, "forbidden"
    )
    assert_error(client.patch(f"{ORDERS}/1", json={"status": "paid"}), 401, "unauthorized")
    assert fake_orders.orders[1].status == "pending"


@pytest.mark.parametrize(
    "body",
    [{}, {"status": "refunded"}, {"status": None}, {"status": 1}, {"status": "paid", "x": 1}],
)
def test_bad_status_bodies_are_422(client, admin, order, fake_orders, body):
    assert_error(client.patch(f"{ORDERS}/1", json=body, headers=admin), 422, "invalid_input")
    assert fake_orders.orders[1].status == "pending"


def test_impossible_transitions_and_unknown_orders(client, admin, order):
    assert_error(
        client.patch(f"{ORDERS}/1", json={"status": "delivered"}, headers=admin), 409, "conflict"
    )
    assert_error(
        client.patch(f"{ORDERS}/9", json={"status": "paid"}, headers=admin), 404, "not_found"
    )


# ----------------------------------------------------------------- the order's notifications


def test_the_owner_reads_the_orders_notifications(client, ada, order, fake_notifications):
    older = _notify(fake_notifications, 1, 1)
    newer = _notify(fake_notifications, 2, 1)
    _notify(fake_notifications, 3, 2)  # another order's
    response = client.get(f"{ORDERS}/1/notifications", headers=ada)
    assert response.status_code == 200
    assert [n["id"] for n in response.get_json()["items"]] == [newer.id, older.id]


def test_another_user_gets_404_for_the_notifications(
    client, ada, bob, order, fake_notifications, transport
):
    _notify(fake_notifications, 1, 1)
    assert_error(client.get(f"{ORDERS}/1/notifications", headers=bob), 404, "not_found")
    client.get(f"{ORDERS}/1", headers=ada)  # now cached
    body = assert_error(client.get(f"{ORDERS}/1/notifications", headers=bob), 404, "not_found")
    assert body["message"] == "order 1 not found"
    assert transport.methods("notifications") == []


def test_an_admin_reads_any_orders_notifications(client, admin, order, fake_notifications):
    _notify(fake_notifications, 1, 1)
    response = client.get(f"{ORDERS}/1/notifications", headers=admin)
    assert response.status_code == 200 and len(response.get_json()["items"]) == 1


def test_notifications_of_an_unknown_order_are_404(client, ada, transport):
    assert_error(client.get(f"{ORDERS}/5/notifications", headers=ada), 404, "not_found")
    assert transport.methods("notifications") == []


def test_past_the_cap_of_pending_orders_placing_is_409(client, ada, lamp, fake_catalog):
    fake_catalog.update_product(lamp.id, ProductPatch(stock=50))
    for _ in range(10):
        client.post(ORDERS, json={"product_id": lamp.id, "quantity": 1}, headers=ada)
    response = client.post(ORDERS, json={"product_id": lamp.id, "quantity": 1}, headers=ada)
    assert "awaiting payment" in assert_error(response, 409, "conflict")["message"]
    assert _stock(fake_catalog) == 40


# ----------------------------------------------------------------- a user's orders (admins)


def _user_orders(user_id: int, query: str = "") -> str:
    return f"/api/users/{user_id}/orders{query}"


def test_an_admin_pages_through_a_users_orders_newest_first(client, ada, bob, admin, lamp):
    for who in (ada, bob, ada, ada):
        client.post(ORDERS, json={"product_id": lamp.id, "quantity": 1}, headers=who)
    first = client.get(_user_orders(1, "?limit=2"), headers=admin)
    assert first.status_code == 200, first.get_json()
    page = first.get_json()
    assert ([o["id"] for o in page["items"]], page["limit"], page["offset"]) == ([4, 3], 2, 0)
    rest = client.get(_user_orders(1, "?limit=2&offset=2"), headers=admin).get_json()
    assert [o["id"] for o in rest["items"]] == [1]
    assert client.get(_user_orders(3), headers=admin).get_json()["items"] == []  # no orders


def test_a_users_orders_are_for_admins_only(client, ada, order, transport):
    assert_error(client.get(_user_orders(1), headers=ada), 403, "forbidden")
    assert_error(client.get(_user_orders(1)), 401, "unauthorized")


def test_the_orders_of_an_unknown_user_are_404(client, admin, transport):
    assert_error(client.get(_user_orders(99), headers=admin), 404, "not_found")
    assert _orders_calls(transport) == []
    assert_error(client.get(_user_orders(1, "?limit=0"), headers=admin), 422, "invalid_input")


def test_a_lost_answer_hands_back_the_key_that_settles_it(
    client, ada, lamp, fake_orders, transport, monkeypatch
):
    """The order is placed but its answer is lost (the broker restarted): the 503 names a key,
    and a retry with it returns that order instead of placing a second one."""
    from contracts.errors import Unavailable

    carry = transport.call
    lost: list[str] = []

    def lose_the_first_answer(service: str, method: str, *args):
        answer = carry(service, method, *args)
        if method == "create_order" and not lost:
            lost.append(method)
            raise Unavailable("service orders did not answer")
        return answer

    monkeypatch.setattr(transport, "call", lose_the_first_answer)
    body = {"product_id": lamp.id, "quantity": 1}
    refused = client.post(ORDERS, json=body, headers=ada)
    assert refused.status_code == 503
    key = refused.headers["Idempotency-Key"]
    assert len(fake_orders.orders) == 1  # placed all the same

    retried = client.post(ORDERS, json=body, headers={**ada, "Idempotency-Key": key})
    assert retried.status_code == 201
    assert len(fake_orders.orders) == 1
    assert retried.json["id"] == next(iter(fake_orders.orders))


def test_a_clients_own_key_is_the_one_handed_back(client, ada, lamp, transport, monkeypatch):
    from contracts.errors import Unavailable

    def no_answer(service: str, method: str, *args):
        raise Unavailable(f"service {service} did not answer")

    monkeypatch.setattr(transport, "call", no_answer)
    refused = client.post(
        ORDERS,
        json={"product_id": lamp.id, "quantity": 1},
        headers={**ada, "Idempotency-Key": "k1"},
    )
    assert refused.status_code == 503
    assert refused.headers["Idempotency-Key"] == "k1"
    assert "Idempotency-Key" not in client.get(ORDERS, headers=ada).headers
