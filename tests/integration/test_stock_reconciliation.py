"""A cancelled order's stock comes back even when the catalog's store was down at the cancel.

The real catalog and orders service classes, wired to each other through ``LocalTransport``:
the catalog's store on SQLite, PostgreSQL and MariaDB, the orders store on SQLite. The store
"goes down" by swapping the catalog's sessions for ones on a server that does not answer; the
catalog's handler of order.status_changed then fails as it would on every retry until the
event is dead-lettered, and only the reservation settling (the timer entrypoint) is left.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from contracts.base import Viewer
from contracts.catalog import CatalogApi, ProductCreate, ProductOut
from contracts.orders import OrderCreate, OrderOut, OrdersApi, StatusChange
from mesh.outbox import OutboxHandle
from mesh.sql import make_sessionmaker
from mesh.typed import client
from services.catalog import models as catalog_models
from services.catalog.service import CatalogService
from services.orders import models as orders_models
from services.orders.service import OrdersService
from tests.integration.engines import SERVERS, fresh_schema
from tests.unit.service_fakes import LocalTransport, wired

ADA = Viewer(user_id=1)


def unreachable(url: str, tmp_path: Path) -> sessionmaker:
    """Sessions on the same kind of store, but one that cannot be reached."""
    if url.startswith("sqlite"):
        dead = f"sqlite:///{tmp_path / 'no-such-folder' / 'catalog.db'}"
    else:
        dead = make_url(url).set(host="127.0.0.1", port=1).render_as_string(hide_password=False)
    return sessionmaker(bind=create_engine(dead, pool_pre_ping=False), expire_on_commit=False)


@dataclass
class Mesh:
    catalog_service: CatalogService
    orders_service: OrdersService
    catalog: CatalogApi
    orders: OrdersApi
    store: sessionmaker
    down: sessionmaker
    lamp: ProductOut

    def stock(self) -> int:
        return self.catalog.get_product(self.lamp.id).stock

    def buy(self, quantity: int) -> OrderOut:
        return self.orders.create_order(1, OrderCreate(product_id=self.lamp.id, quantity=quantity))

    def age(self, **delta: float) -> None:
        """Make every reservation, and its last check, older by ``delta``."""
        with self.store() as session, session.begin():
            for row in session.scalars(select(catalog_models.Reservation)):
                row.created_at -= timedelta(**delta)
                if row.checked_at is not None:
                    row.checked_at -= timedelta(**delta)

    def settle(self) -> None:
        self.catalog_service.settle_reservations()


@pytest.fixture(params=["sqlite", *sorted(SERVERS)])
def mesh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Mesh]:
    with fresh_schema(request.param, catalog_models.Base.metadata, tmp_path) as store:
        orders_db = make_sessionmaker(
            f"sqlite:///{tmp_path / 'orders.db'}", orders_models.Base.metadata
        )
        to_orders = LocalTransport()  # the orders service is added below
        catalog_service = wired(
            CatalogService,
            context=None,
            db=store,
            events=OutboxHandle(catalog_models.outbox, on_commit=lambda _s: None),
            orders=client(OrdersApi, "orders", to_orders),
        )
        catalog = client(CatalogApi, "catalog", LocalTransport(catalog=catalog_service))
        orders_service = wired(
            OrdersService,
            context=None,
            db=orders_db,
            events=OutboxHandle(orders_models.outbox, on_commit=lambda _s: None),
            catalog=catalog,
        )
        to_orders.services["orders"] = orders_service
        orders = client(OrdersApi, "orders", to_orders)
        lamp = catalog.create_product(ProductCreate(name="Lamp", price_cents=900, stock=5))
        url = str(store.kw["bind"].url.render_as_string(hide_password=False))
        yield Mesh(
            catalog_service,
            orders_service,
            catalog,
            orders,
            store,
            unreachable(url, tmp_path),
            lamp,
        )
        orders_db.kw["bind"].dispose()


def last_event(sessions: sessionmaker) -> dict[str, Any]:
    """The wire body of the newest event in an outbox."""
    with sessions() as session:
        payload = session.scalars(
            select(orders_models.outbox.c.payload).order_by(orders_models.outbox.c.id.desc())
        ).first()
    assert payload is not None
    body: dict[str, Any] = json.loads(payload)
    return body


def cancel_while_the_store_is_down(mesh: Mesh, order: OrderOut) -> None:
    """Cancel: the order is cancelled, but neither the RPC release nor the event handler can
    reach the catalog's store (the handler's retries run out: the event is dead-lettered)."""
    mesh.catalog_service.db = mesh.down  # type: ignore[assignment]
    assert mesh.orders.cancel_order(order.id, ADA).status == "cancelled"
    body = last_event(mesh.orders_service.db)
    assert body["new_status"] == "cancelled"
    with pytest.raises(OperationalError):
        mesh.catalog_service.on_order_status_changed(body)
    mesh.catalog_service.db = mesh.store  # type: ignore[assignment]


def test_a_cancel_lost_while_the_store_was_down_is_released_past_the_grace(mesh: Mesh) -> None:
    order, live = mesh.buy(2), mesh.buy(1)
    assert mesh.stock() == 2
    cancel_while_the_store_is_down(mesh, order)
    assert mesh.stock() == 2  # the release was lost
    mesh.settle()
    assert mesh.stock() == 2  # within the grace period, nothing is settled
    mesh.age(hours=1)
    mesh.settle()
    assert mesh.stock() == 4  # the cancelled order's stock is back; the live one's is held
    mesh.age(hours=1)
    mesh.settle()
    assert mesh.stock() == 4  # once
    assert mesh.orders.get_order(live.id, ADA).status == "pending"


def test_a_cancel_after_the_first_check_is_released_by_a_later_pass(mesh: Mesh) -> None:
    paid, shipped = mesh.buy(2), mesh.buy(1)
    for order, path in ((paid, ["paid"]), (shipped, ["paid", "shipped"])):
        for status in path:
            mesh.orders.set_status(order.id, StatusChange(status=status))
    mesh.age(hours=1)
    mesh.settle()  # both orders are held: nothing released
    assert mesh.stock() == 2
    cancel_while_the_store_is_down(mesh, mesh.orders.get_order(paid.id, ADA))
    mesh.settle()
    assert mesh.stock() == 2  # checked a moment ago: asked again only a grace period later
    mesh.age(hours=1)
    mesh.settle()
    assert mesh.stock() == 4  # the paid-then-cancelled order's stock is back
    assert mesh.orders.get_order(shipped.id, ADA).status == "shipped"
