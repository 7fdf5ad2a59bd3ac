"""The catalog's product logic on SQLite.

Payloads that break the contract are refused by the entrypoint before any logic runs:
tests/unit/test_service_contracts.py checks them (CATALOG_BROKEN) on the real service class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from contracts.catalog import ProductCreate, ProductOut, ProductPatch, ProductQuery, ProductUpdated
from contracts.errors import NotFound
from mesh.sql import make_sessionmaker
from services.catalog import products
from services.catalog.models import Base, Product
from tests.unit.fakes import RecordingSink

LAMP: dict[str, Any] = {
    "name": "Desk lamp",
    "description": "Warm light",
    "price_cents": 2500,
    "stock": 3,
}


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker:
    return make_sessionmaker(f"sqlite:///{tmp_path / 'catalog.db'}", Base.metadata)


def create(sessions: sessionmaker, **fields: Any) -> ProductOut:
    return products.create_product(sessions, RecordingSink(), ProductCreate(**{**LAMP, **fields}))


def changes(event: Any) -> dict[str, Any]:
    return {field: change.model_dump() for field, change in event.changes.items()}


def test_create_stores_the_product_and_announces_every_field(sessions) -> None:
    sink = RecordingSink()
    product = products.create_product(sessions, sink, ProductCreate(**LAMP))
    assert product.name == "Desk lamp" and product.currency == "EUR"
    assert product.created_at == product.updated_at
    [event] = sink.events
    assert isinstance(event, ProductUpdated)
    assert (event.product_id, event.change) == (product.id, "created")
    assert changes(event) == {
        "name": {"old": None, "new": "Desk lamp"},
        "description": {"old": None, "new": "Warm light"},
        "price_cents": {"old": None, "new": 2500},
        "currency": {"old": None, "new": "EUR"},
        "stock": {"old": None, "new": 3},
    }


def test_update_announces_only_the_fields_that_changed(sessions) -> None:
    product = create(sessions)
    sink = RecordingSink()
    patch = ProductPatch(name="Desk lamp", price_cents=1999, stock=3, description="Cold light")
    updated = products.update_product(sessions, sink, product.id, patch)
    assert updated.price_cents == 1999 and updated.description == "Cold light"
    assert updated.updated_at > product.updated_at
    [event] = sink.events
    assert event.change == "updated"
    assert changes(event) == {
        "price_cents": {"old": 2500, "new": 1999},
        "description": {"old": "Warm light", "new": "Cold light"},
    }


def test_a_patch_that_changes_nothing_announces_nothing(sessions) -> None:
    product = create(sessions)
    sink = RecordingSink()
    same = products.update_product(sessions, sink, product.id, ProductPatch(name="Desk lamp"))
    assert same == product
    assert sink.events == []


def test_update_of_a_missing_product_is_not_found(sessions) -> None:
    with pytest.raises(NotFound):
        products.update_product(sessions, RecordingSink(), 99, ProductPatch(stock=1))


def test_delete_is_soft_announced_once_and_hides_the_product(sessions) -> None:
    product = create(sessions)
    sink = RecordingSink()
    assert products.delete_product(sessions, sink, product.id) is None
    assert [(e.change, e.changes) for e in sink.events] == [("deleted", {})]
    with sessions() as session:
        assert session.get(Product, product.id).deleted_at is not None
    with pytest.raises(NotFound):
        products.get_product(sessions, product.id)
    with pytest.raises(NotFound):
        products.delete_product(sessions, sink, product.id)
    with pytest.raises(NotFound):
        products.update_product(sessions, sink, product.id, ProductPatch(stock=1))
    assert len(sink.events) == 1
    assert products.list_products(sessions, ProductQuery()).total == 0


def test_get_unknown_id_is_not_found(sessions) -> None:
    create(sessions)
    with pytest.raises(NotFound):
        products.get_product(sessions, 999)


def test_get_returns_the_product(sessions) -> None:
    product = create(sessions)
    assert products.get_product(sessions, product.id) == product


def test_list_pages_in_id_order_and_counts_every_match(sessions) -> None:
    ids = [create(sessions, name=f"Lamp {n}").id for n in range(5)]
    page = products.list_products(sessions, ProductQuery(limit=2, offset=1))
    assert [p.id for p in page.items] == ids[1:3]
    assert (page.total, page.limit, page.offset) == (5, 2, 1)
    assert products.list_products(sessions, ProductQuery()).limit == 20


def test_q_matches_name_or_description_in_any_case(sessions) -> None:
    create(sessions, name="Desk LAMP", description="")
    create(sessions, name="Chair", description="goes with a lamp")
    create(sessions, name="Table", description="")
    found = products.list_products(sessions, ProductQuery(q="  lamp "))
    assert [p.name for p in found.items] == ["Desk LAMP", "Chair"]
    assert found.total == 2


@pytest.mark.parametrize(
    ("q", "expected"),
    [("100%", ["100% cotton"]), ("a_b", ["a_b"]), ("%", ["100% cotton"]), ("/", ["x/y"])],
)
def test_q_takes_wildcards_literally(sessions, q, expected) -> None:
    for name in ("100% cotton", "1000 cotton", "a_b", "axb", "x/y"):
        create(sessions, name=name, description="")
    found = products.list_products(sessions, ProductQuery(q=q))
    assert [p.name for p in found.items] == expected
