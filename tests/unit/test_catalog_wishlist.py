from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from mesh.errors import InvalidInput, NotFound
from mesh.sql import make_sessionmaker
from services.catalog import products, wishlist
from services.catalog.models import Base, WishlistEntry
from tests.unit.fakes import RecordingSink


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker:
    return make_sessionmaker(f"sqlite:///{tmp_path / 'catalog.db'}", Base.metadata)


def create(sessions: sessionmaker, name: str) -> dict[str, Any]:
    return products.create_product(sessions, RecordingSink(), {"name": name, "price_cents": 100})


def test_add_is_idempotent(sessions) -> None:
    lamp = create(sessions, "Lamp")
    first = wishlist.wishlist_add(sessions, 7, lamp["id"])
    again = wishlist.wishlist_add(sessions, 7, lamp["id"])
    assert first == again
    assert first["product"] == lamp
    with sessions() as session:
        assert session.query(WishlistEntry).count() == 1


def test_list_is_newest_first_and_skips_deleted_products(sessions) -> None:
    lamp, chair, desk = (create(sessions, name) for name in ("Lamp", "Chair", "Desk"))
    for product in (lamp, chair, desk):
        wishlist.wishlist_add(sessions, 7, product["id"])
    wishlist.wishlist_add(sessions, 8, lamp["id"])
    products.delete_product(sessions, RecordingSink(), chair["id"])
    items = wishlist.wishlist_list(sessions, 7)
    assert [item["product"]["name"] for item in items] == ["Desk", "Lamp"]
    assert wishlist.wishlist_list(sessions, 9) == []


@pytest.mark.parametrize("product_id", [999, 0, "1", None])
def test_add_unknown_product_is_not_found(sessions, product_id) -> None:
    with pytest.raises(NotFound):
        wishlist.wishlist_add(sessions, 7, product_id)


def test_add_deleted_product_is_not_found(sessions) -> None:
    lamp = create(sessions, "Lamp")
    products.delete_product(sessions, RecordingSink(), lamp["id"])
    with pytest.raises(NotFound):
        wishlist.wishlist_add(sessions, 7, lamp["id"])


def test_remove_is_idempotent(sessions) -> None:
    lamp = create(sessions, "Lamp")
    wishlist.wishlist_add(sessions, 7, lamp["id"])
    assert wishlist.wishlist_remove(sessions, 7, lamp["id"]) is None
    assert wishlist.wishlist_remove(sessions, 7, lamp["id"]) is None
    assert wishlist.wishlist_remove(sessions, 7, "junk") is None
    assert wishlist.wishlist_list(sessions, 7) == []


def test_wishlisted_by_lists_user_ids_even_after_a_delete(sessions) -> None:
    lamp = create(sessions, "Lamp")
    for user_id in (9, 3, 5):
        wishlist.wishlist_add(sessions, user_id, lamp["id"])
    products.delete_product(sessions, RecordingSink(), lamp["id"])
    assert wishlist.wishlisted_by(sessions, lamp["id"]) == [3, 5, 9]
    assert wishlist.wishlisted_by(sessions, 999) == []
    with pytest.raises(NotFound):
        wishlist.wishlisted_by(sessions, "1")


@pytest.mark.parametrize("user_id", [0, -3, "7", True, None])
def test_a_malformed_user_id_is_invalid_input(sessions, user_id) -> None:
    lamp = create(sessions, "Lamp")
    for call in (
        lambda: wishlist.wishlist_list(sessions, user_id),
        lambda: wishlist.wishlist_add(sessions, user_id, lamp["id"]),
        lambda: wishlist.wishlist_remove(sessions, user_id, lamp["id"]),
    ):
        with pytest.raises(InvalidInput) as caught:
            call()
        assert caught.value.details == [{"field": "user_id", "message": "must be a positive id"}]
