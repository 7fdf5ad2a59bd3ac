"""Wishlists on SQLite.

Malformed user and product ids are refused by the entrypoint before any logic runs:
tests/unit/test_service_contracts.py checks them (CATALOG_BROKEN) on the real service class.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from contracts.catalog import ProductCreate, ProductOut, WishlistQuery
from contracts.errors import NotFound
from mesh.sql import make_sessionmaker
from services.catalog import products, wishlist
from services.catalog.models import Base, WishlistEntry
from tests.unit.fakes import RecordingSink


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker:
    return make_sessionmaker(f"sqlite:///{tmp_path / 'catalog.db'}", Base.metadata)


def create(sessions: sessionmaker, name: str) -> ProductOut:
    request = ProductCreate(name=name, price_cents=100)
    return products.create_product(sessions, RecordingSink(), request)


def test_add_is_idempotent(sessions) -> None:
    lamp = create(sessions, "Lamp")
    first = wishlist.wishlist_add(sessions, 7, lamp.id)
    again = wishlist.wishlist_add(sessions, 7, lamp.id)
    assert first == again
    assert first.product == lamp
    with sessions() as session:
        assert session.query(WishlistEntry).count() == 1


def test_list_is_newest_first_and_skips_deleted_products(sessions) -> None:
    lamp, chair, desk = (create(sessions, name) for name in ("Lamp", "Chair", "Desk"))
    for product in (lamp, chair, desk):
        wishlist.wishlist_add(sessions, 7, product.id)
    wishlist.wishlist_add(sessions, 8, lamp.id)
    products.delete_product(sessions, RecordingSink(), chair.id)
    items = wishlist.wishlist_list(sessions, 7, WishlistQuery()).items
    assert [item.product.name for item in items] == ["Desk", "Lamp"]
    assert wishlist.wishlist_list(sessions, 9, WishlistQuery()).items == []


def test_a_long_wishlist_comes_in_bounded_pages(sessions) -> None:
    """The bug: the whole wishlist came in one answer, however long."""
    for n in range(7):
        wishlist.wishlist_add(sessions, 7, create(sessions, f"P{n}").id)
    first = wishlist.wishlist_list(sessions, 7, WishlistQuery(limit=3))
    assert [i.product.name for i in first.items] == ["P6", "P5", "P4"]
    assert first.next_offset == 3
    last = wishlist.wishlist_list(sessions, 7, WishlistQuery(limit=3, offset=6))
    assert ([i.product.name for i in last.items], last.next_offset) == (["P0"], None)
    assert len(wishlist.wishlist_list(sessions, 7, WishlistQuery()).items) == 7


def test_add_unknown_product_is_not_found(sessions) -> None:
    with pytest.raises(NotFound):
        wishlist.wishlist_add(sessions, 7, 999)


def test_add_deleted_product_is_not_found(sessions) -> None:
    lamp = create(sessions, "Lamp")
    products.delete_product(sessions, RecordingSink(), lamp.id)
    with pytest.raises(NotFound):
        wishlist.wishlist_add(sessions, 7, lamp.id)


def test_remove_is_idempotent(sessions) -> None:
    lamp = create(sessions, "Lamp")
    wishlist.wishlist_add(sessions, 7, lamp.id)
    assert wishlist.wishlist_remove(sessions, 7, lamp.id) is None
    assert wishlist.wishlist_remove(sessions, 7, lamp.id) is None
    assert wishlist.wishlist_remove(sessions, 7, 999) is None
    assert wishlist.wishlist_list(sessions, 7, WishlistQuery()).items == []


def test_wishlisted_by_lists_user_ids_even_after_a_delete(sessions) -> None:
    lamp = create(sessions, "Lamp")
    for user_id in (9, 3, 5):
        wishlist.wishlist_add(sessions, user_id, lamp.id)
    products.delete_product(sessions, RecordingSink(), lamp.id)
    assert wishlist.wishlisted_by(sessions, lamp.id) == [3, 5, 9]
    assert wishlist.wishlisted_by(sessions, 999) == []
    assert wishlist.wishlisted_by(sessions, lamp.id, after=3, limit=1) == [5]
    assert wishlist.wishlisted_by(sessions, lamp.id, after=9) == []
