"""/api/products (cached reads, admin writes), /api/wishlist and /api/users/{id}."""

from __future__ import annotations

import pytest

from contracts.errors import Unavailable
from tests.unit.gateway_helpers import assert_error, bearer

PRODUCTS = "/api/products"


@pytest.fixture
def admin(login) -> dict[str, str]:
    return bearer(login("root@example.com", admin=True)["access_token"])


@pytest.fixture
def user(login) -> dict[str, str]:
    return bearer(login("ada@example.com")["access_token"])


# ----------------------------------------------------------------- list


def test_list_defaults_go_to_the_service_as_a_product_query(client, fake_catalog):
    fake_catalog.add("Lamp")
    fake_catalog.add("Desk")
    response = client.get(PRODUCTS)
    assert response.status_code == 200
    page = response.get_json()
    assert [p["name"] for p in page["items"]] == ["Lamp", "Desk"]
    assert (page["total"], page["limit"], page["offset"]) == (2, 20, 0)


def test_list_passes_search_and_paging(client, fake_catalog, transport):
    for name in ("Red lamp", "Blue lamp", "Desk", "Green lamp"):
        fake_catalog.add(name)
    response = client.get(f"{PRODUCTS}?q=%20LAMP%20&limit=2&offset=1")
    assert response.status_code == 200
    page = response.get_json()
    assert [p["name"] for p in page["items"]] == ["Blue lamp", "Green lamp"]
    assert page["total"] == 3
    [call] = transport.calls
    assert call.args == ({"q": "LAMP", "limit": 2, "offset": 1},)  # stripped, on the wire


@pytest.mark.parametrize("limit", [1, 100])
def test_list_limit_bounds_are_accepted(client, limit):
    assert client.get(f"{PRODUCTS}?limit={limit}").status_code == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=ten", "limit"),
        ("limit=1.5", "limit"),
        ("limit=", "limit"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-5", "limit"),
        ("limit=%2B5", "limit"),
        ("limit=5_0", "limit"),
        ("limit=%D9%A3", "limit"),  # an Arabic-Indic digit: int() would take it
        ("offset=-1", "offset"),
        ("offset=1e3", "offset"),
        ("offset=1000001", "offset"),
        ("offset=99999999999999999999999999", "offset"),
        ("q=" + "x" * 101, "q"),
    ],
)
def test_list_bad_parameters_are_422_per_field(client, transport, query, field):
    body = assert_error(client.get(f"{PRODUCTS}?{query}"), 422, "invalid_input")
    assert [d["field"] for d in body["details"]] == [field]
    assert transport.calls == []


def test_list_reports_every_bad_parameter_at_once(client):
    body = assert_error(client.get(f"{PRODUCTS}?limit=x&offset=y"), 422, "invalid_input")
    assert {d["field"] for d in body["details"]} == {"limit", "offset"}


def test_list_when_the_catalog_is_down_is_503(client, fake_catalog, monkeypatch):
    def down(_query):
        raise Unavailable("service catalog did not answer")

    monkeypatch.setattr(fake_catalog, "list_products", down)
    assert_error(client.get(PRODUCTS), 503, "unavailable")


def test_list_answer_breaking_its_contract_is_500(client, fake_catalog, monkeypatch):
    monkeypatch.setattr(fake_catalog, "list_products", lambda _query: {"items": "nope"})
    assert_error(client.get(PRODUCTS), 500, "internal_error")


# ----------------------------------------------------------------- one product (cached)


def test_get_is_a_miss_then_a_hit(client, fake_catalog, transport, fake_redis):
    product = fake_catalog.add("Lamp", price_cents=1999, stock=5)
    first = client.get(f"{PRODUCTS}/1")
    second = client.get(f"{PRODUCTS}/1")
    assert first.status_code == second.status_code == 200
    assert first.headers["X-Cache"] == "MISS" and second.headers["X-Cache"] == "HIT"
    assert first.get_json() == second.get_json()
    assert first.get_json()["name"] == product.name
    assert transport.methods() == ["get_product"]  # the hit did not ask
    assert 0 < fake_redis.ttl("gw:cache:product:1") <= 300


def test_get_unknown_product_is_404_and_never_cached(client, transport, fake_redis):
    for _ in range(2):
        response = client.get(f"{PRODUCTS}/42")
        assert_error(response, 404, "not_found")
        assert "X-Cache" not in response.headers
    assert transport.methods() == ["get_product", "get_product"]
    assert fake_redis.get("gw:cache:product:42") is None


@pytest.mark.parametrize(
    "raw", ["0", "-1", "abc", "1.5", "%D9%A3", "2147483648", "9223372036854775808", "1" * 25, "01x"]
)
def test_ids_that_cannot_exist_are_404_without_rpc(client, admin, transport, raw):
    calls_before = len(transport.calls)
    assert_error(client.get(f"{PRODUCTS}/{raw}"), 404, "not_found")
    # Never 405 either: another rule takes the same path with other methods.
    assert_error(client.delete(f"{PRODUCTS}/{raw}", headers=admin), 404, "not_found")
    assert_error(client.patch(f"{PRODUCTS}/{raw}", json={}, headers=admin), 404, "not_found")
    assert len(transport.calls) == calls_before


def test_the_largest_id_reaches_the_service(client, transport):
    assert_error(client.get(f"{PRODUCTS}/2147483647"), 404, "not_found")
    [call] = transport.calls
    assert (call.method, call.args) == ("get_product", (2**31 - 1,))


# ----------------------------------------------------------------- create


def test_admin_creates_a_product(client, admin, fake_catalog):
    body = {"name": "  Lamp ", "price_cents": 1999, "stock": 3}
    response = client.post(PRODUCTS, json=body, headers=admin)
    assert response.status_code == 201
    product = response.get_json()
    assert product["id"] == 1 and product["name"] == "Lamp" and product["currency"] == "EUR"
    assert response.headers["Location"] == "/api/products/1"
    stored = fake_catalog.products[1]
    assert (stored.name, stored.description, stored.price_cents, stored.stock) == (
        "Lamp",
        "",
        1999,
        3,
    )


def test_creating_needs_a_token(client, fake_catalog):
    response = client.post(PRODUCTS, json={"name": "Lamp", "price_cents": 1})
    assert_error(response, 401, "unauthorized")
    assert fake_catalog.products == {}


def test_creating_is_for_admins_only(client, user, fake_catalog):
    response = client.post(PRODUCTS, json={"name": "Lamp", "price_cents": 1}, headers=user)
    assert_error(response, 403, "forbidden")
    assert fake_catalog.products == {}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"price_cents": 1}, {"name"}),
        ({"name": "", "price_cents": 1}, {"name"}),
        ({"name": "x" * 201, "price_cents": 1}, {"name"}),
        ({"name": "Lamp", "price_cents": "1999"}, {"price_cents"}),
        ({"name": "Lamp", "price_cents": 19.99}, {"price_cents"}),
        ({"name": "Lamp", "price_cents": -1}, {"price_cents"}),
        ({"name": "Lamp", "price_cents": 10**30}, {"price_cents"}),
        ({"name": "Lamp", "price_cents": True}, {"price_cents"}),
        ({"name": "Lamp", "price_cents": 1, "currency": "eur"}, {"currency"}),
        ({"name": "Lamp", "price_cents": 1, "stock": -3}, {"stock"}),
        ({"name": "Lamp", "price_cents": 1, "stock": 1_000_001}, {"stock"}),
        ({"name": "Lamp", "price_cents": 1, "id": 7}, {"id"}),
        ({"name": ["Lamp"], "price_cents": {}}, {"name", "price_cents"}),
        ({"name": "Lamp", "price_cents": 1, "description": None}, {"description"}),
    ],
)
def test_creating_with_bad_fields_is_422(client, admin, fake_catalog, body, fields):
    response = client.post(PRODUCTS, json=body, headers=admin)
    details = assert_error(response, 422, "invalid_input")["details"]
    assert {d["field"] for d in details} == fields
    assert fake_catalog.products == {}


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        ('{"name": ', "application/json", 400),
        ("[1, 2]", "application/json", 400),
        ("name=Lamp", "application/x-www-form-urlencoded", 415),
    ],
)
def test_creating_with_a_broken_body_is_4xx(client, admin, raw, content_type, status):
    response = client.post(PRODUCTS, data=raw, content_type=content_type, headers=admin)
    assert response.status_code == status
    assert response.get_json()["error"] in {"bad_request", "unsupported_media_type"}


# ----------------------------------------------------------------- change, delete


def test_patch_sends_only_the_fields_given_and_invalidates(client, admin, fake_catalog, transport):
    fake_catalog.add("Lamp", price_cents=1999)
    assert client.get(f"{PRODUCTS}/1").headers["X-Cache"] == "MISS"
    assert client.get(f"{PRODUCTS}/1").headers["X-Cache"] == "HIT"

    response = client.patch(f"{PRODUCTS}/1", json={"price_cents": 500}, headers=admin)
    assert response.status_code == 200
    assert response.get_json()["price_cents"] == 500
    [update] = [c for c in transport.calls if c.method == "update_product"]
    assert update.args == (1, {"price_cents": 500})  # the unset fields are not sent
    [event] = fake_catalog.events[1:]
    assert set(event.changes) == {"price_cents"}

    after = client.get(f"{PRODUCTS}/1")
    assert after.headers["X-Cache"] == "MISS"
    assert after.get_json()["price_cents"] == 500
    assert client.get(f"{PRODUCTS}/1").headers["X-Cache"] == "HIT"


def test_a_patch_that_timed_out_still_invalidates(client, admin, fake_catalog, monkeypatch):
    fake_catalog.add("Lamp", price_cents=1999)
    client.get(f"{PRODUCTS}/1")
    update_product = fake_catalog.update_product

    def slow(product_id, payload):
        update_product(product_id, payload)  # it did happen...
        raise Unavailable("service catalog did not answer")  # ...but the answer was lost

    monkeypatch.setattr(fake_catalog, "update_product", slow)
    response = client.patch(f"{PRODUCTS}/1", json={"price_cents": 5}, headers=admin)
    assert_error(response, 503, "unavailable")
    after = client.get(f"{PRODUCTS}/1")
    assert after.headers["X-Cache"] == "MISS" and after.get_json()["price_cents"] == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"price_cents": None}, "price_cents"),
        ({"stock": "7"}, "stock"),
        ({"stock": -1}, "stock"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_patch_with_bad_fields_is_422(client, admin, fake_catalog, body, field):
    lamp = fake_catalog.add("Lamp")
    response = client.patch(f"{PRODUCTS}/1", json=body, headers=admin)
    details = assert_error(response, 422, "invalid_input")["details"]
    assert details[0]["field"] == field
    assert fake_catalog.products[1] == lamp and len(fake_catalog.events) == 1


def test_patch_of_an_unknown_product_is_404(client, admin):
    response = client.patch(f"{PRODUCTS}/9", json={"stock": 1}, headers=admin)
    assert_error(response, 404, "not_found")


def test_patch_and_delete_are_for_admins_only(client, user, fake_catalog):
    lamp = fake_catalog.add("Lamp")
    assert_error(client.patch(f"{PRODUCTS}/1", json={"stock": 1}, headers=user), 403, "forbidden")
    assert_error(client.delete(f"{PRODUCTS}/1", headers=user), 403, "forbidden")
    assert_error(client.patch(f"{PRODUCTS}/1", json={"stock": 1}), 401, "unauthorized")
    assert_error(client.delete(f"{PRODUCTS}/1"), 401, "unauthorized")
    assert fake_catalog.products[1] == lamp and fake_catalog.deleted == set()


def test_delete_is_204_and_drops_the_cached_product(client, admin, fake_catalog):
    fake_catalog.add("Lamp")
    client.get(f"{PRODUCTS}/1")
    response = client.delete(f"{PRODUCTS}/1", headers=admin)
    assert response.status_code == 204 and response.data == b""
    assert fake_catalog.deleted == {1}
    assert_error(client.get(f"{PRODUCTS}/1"), 404, "not_found")
    assert_error(client.delete(f"{PRODUCTS}/1", headers=admin), 404, "not_found")


# ----------------------------------------------------------------- wishlist


def test_wishlist_needs_a_token(client, transport):
    assert client.get("/api/wishlist").status_code == 401
    assert client.put("/api/wishlist/1").status_code == 401
    assert client.delete("/api/wishlist/1").status_code == 401
    assert transport.calls == []


def test_wishlist_add_is_idempotent_and_remove_too(client, user, fake_catalog):
    fake_catalog.add("Lamp")
    first = client.put("/api/wishlist/1", headers=user)
    again = client.put("/api/wishlist/1", headers=user)
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json()
    assert first.get_json()["product"]["name"] == "Lamp"
    listed = client.get("/api/wishlist", headers=user).get_json()
    assert [i["product"]["id"] for i in listed["items"]] == [1]

    assert client.delete("/api/wishlist/1", headers=user).status_code == 204
    assert client.delete("/api/wishlist/1", headers=user).status_code == 204
    assert client.get("/api/wishlist", headers=user).get_json() == {
        "items": [],
        "limit": 50,
        "offset": 0,
        "next_offset": None,
    }
    assert fake_catalog.wishlist == []


def test_the_wishlist_is_paged_and_says_where_the_next_page_starts(client, user, fake_catalog):
    for n in range(3):
        fake_catalog.wishlist_add(1, fake_catalog.add(f"P{n}").id)
    page = client.get("/api/wishlist?limit=2", headers=user).get_json()
    assert ([i["product"]["name"] for i in page["items"]], page["next_offset"]) == (
        ["P2", "P1"],
        2,
    )
    page = client.get("/api/wishlist?limit=2&offset=2", headers=user).get_json()
    assert ([i["product"]["name"] for i in page["items"]], page["next_offset"]) == (["P0"], None)
    assert client.get("/api/wishlist?limit=101", headers=user).status_code == 422


def test_wishlists_belong_to_the_token_identity(client, login, fake_catalog):
    fake_catalog.add("Lamp")
    ada = bearer(login("ada@example.com")["access_token"])
    bob = bearer(login("bob@example.com")["access_token"])
    client.put("/api/wishlist/1", headers=ada)
    assert client.get("/api/wishlist", headers=bob).get_json()["items"] == []
    assert [(e.user_id, e.product_id) for e in fake_catalog.wishlist] == [(1, 1)]
    client.delete("/api/wishlist/1", headers=bob)  # bob's own (empty) wishlist
    assert [(e.user_id, e.product_id) for e in fake_catalog.wishlist] == [(1, 1)]


def test_wishlist_unknown_or_impossible_product_is_404(client, user, transport):
    assert_error(client.put("/api/wishlist/7", headers=user), 404, "not_found")
    assert_error(client.put("/api/wishlist/-7", headers=user), 404, "not_found")
    assert_error(client.delete("/api/wishlist/abc", headers=user), 404, "not_found")
    assert [(c.method, c.args) for c in transport.calls if c.service == "catalog"] == [
        ("wishlist_add", (1, 7))
    ]


# ----------------------------------------------------------------- public profiles (cached)


def test_a_profile_shows_id_and_name_only_and_is_cached(client, login, transport, fake_redis):
    token = login("ada@example.com")["access_token"]
    login("bob@example.com", name="Bob")
    first = client.get("/api/users/2", headers=bearer(token))
    second = client.get("/api/users/2", headers=bearer(token))
    assert first.status_code == second.status_code == 200
    assert first.get_json() == second.get_json() == {"id": 2, "name": "Bob"}
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert "bob@example.com" not in fake_redis.get("gw:cache:user:2")
    assert 300 < fake_redis.ttl("gw:cache:user:2") <= 600
    profile_calls = [c for c in transport.calls if (c.method, c.args) == ("get_user", (2,))]
    assert len(profile_calls) == 1


def test_a_profile_needs_a_token_and_a_real_id(client, user):
    assert_error(client.get("/api/users/1"), 401, "unauthorized")
    assert_error(client.get("/api/users/99", headers=user), 404, "not_found")
    assert_error(client.get("/api/users/0", headers=user), 404, "not_found")
    assert client.get("/api/users/me", headers=user).get_json()["email"] == "ada@example.com"
