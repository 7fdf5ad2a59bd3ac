"""The orders service's adapter to the catalog: a best-effort release never holds its caller.

The bug: a cancel waited for the catalog's release as long as the RPC allowed (RPC_TIMEOUT),
the same time the gateway waits for the cancel itself, so a catalog that hung turned a
cancel that had succeeded into a 503.
"""

from __future__ import annotations

import eventlet
import pytest
from eventlet.event import Event

from contracts.catalog import ReserveRequest
from services.orders.clients import CatalogStock
from tests.unit.service_fakes import FakeCatalog


@pytest.fixture
def catalog() -> FakeCatalog:
    catalog = FakeCatalog()
    lamp = catalog.add(stock=3)
    catalog.reserve_stock(ReserveRequest(product_id=lamp.id, quantity=2, order_ref="order-1"))
    return catalog


def stock(catalog: FakeCatalog) -> int:
    return catalog.products[1].stock


def test_a_release_that_hangs_is_left_to_finish_in_the_background(
    catalog: FakeCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, release = Event(), catalog.release_stock

    def hangs(order_ref: str) -> bool:
        gate.wait()
        return release(order_ref)

    monkeypatch.setattr(catalog, "release_stock", hangs)
    assert CatalogStock(catalog, release_wait=0.05).release("order-1") is False
    assert stock(catalog) == 1
    gate.send()
    for _ in range(100):
        if stock(catalog) == 3:
            break
        eventlet.sleep(0.01)
    assert stock(catalog) == 3  # the call went on, and released once


def test_a_release_within_the_wait_answers_its_outcome(catalog: FakeCatalog) -> None:
    adapter = CatalogStock(catalog, release_wait=30)
    assert adapter.release("order-1") is True
    assert adapter.release("order-1") is False  # released already
    assert stock(catalog) == 3


def test_a_failed_release_in_the_background_is_logged_not_raised(
    catalog: FakeCatalog, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(order_ref: str) -> bool:
        raise ConnectionError("catalog down")

    monkeypatch.setattr(catalog, "release_stock", down)
    assert CatalogStock(catalog, release_wait=30).release("order-1") is False
    assert "stock not released" in caplog.text
    with pytest.raises(ConnectionError):
        CatalogStock(catalog).release("order-1")  # no wait given: the plain call
