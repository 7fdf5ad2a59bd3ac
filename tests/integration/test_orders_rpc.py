"""Orders, catalog and users as real nameko services: RPC between them, errors, events."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue, binding

from contracts.base import Viewer
from contracts.catalog import CatalogApi, ProductCreate, ReserveRequest
from contracts.errors import Conflict, InvalidInput, NotFound
from contracts.orders import OrderCreate, OrderQuery, OrdersApi, OrderStatusChanged
from contracts.users import RegisterRequest, UsersApi
from gateway.rpc_pool import RpcPool
from mesh import topology
from mesh.settings import Settings
from mesh.typed import client
from tests.integration.conftest import ROOT
from tests.integration.test_reliable_events import consumers, wait_for

SERVICES = ("users", "catalog", "orders")
EVENTS_QUEUE = "it-commerce-events"


def events_queue() -> Queue:
    exchanges: list[Exchange] = [topology.event_exchange(s) for s in ("catalog", "orders")]
    return Queue(EVENTS_QUEUE, bindings=[binding(e, routing_key="#") for e in exchanges])


@pytest.fixture
def rpc(settings: Settings, tmp_path: Path) -> Iterator[RpcPool]:
    """The three services in one ``nameko run`` process, and a client for them."""
    with Connection(settings.amqp_uri) as connection:
        channel = connection.channel()
        for source in ("catalog", "orders"):
            topology.event_exchange(source)(channel).declare()
        events_queue()(channel).declare()
    log = (tmp_path / "services.log").open("w")
    nameko = str(Path(sys.executable).with_name("nameko"))
    modules = [f"services.{name}.service" for name in SERVICES]
    process = subprocess.Popen(
        [nameko, "run", "--config", "mesh/nameko.yaml", *modules],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = RpcPool(settings.amqp_uri, size=2, timeout=20)
    try:
        for name in SERVICES:
            wait_for(lambda n=name: consumers(settings.amqp_uri, f"rpc-{n}"), 30, name)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(20)
        log.close()


def take(amqp_uri: str, queue: Queue, count: int) -> list[Any]:
    """At least ``count`` messages off ``queue`` (kombu's, acked), waiting for them."""
    taken: list[Any] = []

    def more() -> bool:
        with Connection(amqp_uri) as connection:
            bound = queue(connection.channel())
            while (message := bound.get(no_ack=True)) is not None:
                taken.append(message)
        return len(taken) >= count

    wait_for(more, 20, f"{count} messages on {queue.name}")
    return taken


def published(amqp_uri: str, count: int) -> list[dict[str, Any]]:
    """Take ``count`` events off our queue, waiting for the outbox relays."""
    return [message.payload for message in take(amqp_uri, events_queue(), count)]


def test_an_order_reserves_stock_and_a_cancel_gives_it_back(
    settings: Settings, rpc: RpcPool
) -> None:
    users = client(UsersApi, "users", rpc)
    catalog = client(CatalogApi, "catalog", rpc)
    orders = client(OrdersApi, "orders", rpc)
    user = users.register(
        RegisterRequest(email="buyer@example.com", password="correct-horse-9", name="Buyer")
    )
    lamp = catalog.create_product(ProductCreate(name="Lamp", price_cents=1250, stock=3))

    def buy(quantity: int, product_id: int = lamp.id) -> object:
        return orders.create_order(user.id, OrderCreate(product_id=product_id, quantity=quantity))

    order = orders.create_order(user.id, OrderCreate(product_id=lamp.id, quantity=2))
    assert (order.status, order.total, order.currency) == ("pending", 2500, "EUR")
    assert catalog.get_product(lamp.id).stock == 1

    with pytest.raises(Conflict, match="not enough stock"):
        buy(2)
    with pytest.raises(NotFound, match="product not found"):
        buy(1, product_id=999)
    with pytest.raises(InvalidInput) as caught:  # a quantity no OrderCreate can hold
        rpc.call("orders", "create_order", user.id, {"product_id": lamp.id, "quantity": 0})
    assert caught.value.details[0]["field"] == "order.quantity"
    with pytest.raises(InvalidInput) as caught:  # only True makes an administrator
        rpc.call("orders", "get_order", order.id, {"user_id": user.id + 1, "is_admin": "true"})
    assert caught.value.details[0]["field"] == "viewer.is_admin"

    with pytest.raises(NotFound):
        orders.get_order(order.id, Viewer(user_id=user.id + 1))
    assert orders.get_order(order.id, Viewer(user_id=user.id + 1, is_admin=True)) == order
    cancelled = orders.cancel_order(order.id, Viewer(user_id=user.id))
    assert cancelled.status == "cancelled"
    assert catalog.get_product(lamp.id).stock == 3
    assert orders.list_orders(user.id, OrderQuery()).items == [cancelled]

    # Each service's relay publishes in commit order; the two relays interleave freely.
    events = published(settings.amqp_uri, 5)
    stock_events = [e for e in events if e["type"] == "product.updated"]
    assert [(e["change"], e["changes"].get("stock")) for e in stock_events] == [
        ("created", {"old": None, "new": 3}),
        ("updated", {"old": 3, "new": 1}),
        ("updated", {"old": 1, "new": 3}),
    ]
    order_events = [e for e in events if e["type"] != "product.updated"]
    assert [e["type"] for e in order_events] == ["order.created", "order.status_changed"]
    assert order_events[0]["order_id"] == order_events[1]["order_id"] == order.id
    assert (order_events[1]["old_status"], order_events[1]["new_status"]) == (
        "pending",
        "cancelled",
    )


def test_rpc_messages_are_transient_and_events_persistent(settings: Settings, rpc: RpcPool) -> None:
    """RabbitMQ writes every persistent message to disk: RPC requests and replies are
    transient (a lost one is a timeout either way: ``mesh.rpc``); events stay persistent."""
    tap = Queue("it-rpc-tap", Exchange("nameko-rpc", type="topic"), routing_key="#")
    with Connection(settings.amqp_uri) as connection:
        tap(connection.channel()).declare()
    try:
        catalog = client(CatalogApi, "catalog", rpc)
        lamp = catalog.create_product(ProductCreate(name="Lamp", price_cents=1250, stock=3))
        orders = client(OrdersApi, "orders", rpc)
        orders.create_order(7, OrderCreate(product_id=lamp.id, quantity=1))
        # the client's create_product and create_order, orders' reserve_stock, their replies
        rpc_messages = take(settings.amqp_uri, tap, 6)
    finally:
        with Connection(settings.amqp_uri) as connection:
            tap(connection.channel()).delete()
    keys = {message.delivery_info["routing_key"] for message in rpc_messages}
    requests = {key for key in keys if key.count(".") == 1}
    assert requests == {"catalog.create_product", "orders.create_order", "catalog.reserve_stock"}
    assert {message.properties["delivery_mode"] for message in rpc_messages} == {1}
    # product created, its stock changed, order created
    events = take(settings.amqp_uri, events_queue(), 3)
    assert {message.properties["delivery_mode"] for message in events} == {2}


def test_a_cancel_event_releases_the_stock_even_without_the_rpc(
    settings: Settings, rpc: RpcPool
) -> None:
    """The catalog's own handler of order.status_changed is what guarantees the release."""
    catalog = client(CatalogApi, "catalog", rpc)
    lamp = catalog.create_product(ProductCreate(name="Lamp", price_cents=100, stock=2))
    ref = "ref-from-a-lost-rpc"
    catalog.reserve_stock(ReserveRequest(product_id=lamp.id, quantity=2, order_ref=ref))
    assert catalog.get_product(lamp.id).stock == 0
    event = OrderStatusChanged(
        order_id=1, user_id=1, order_ref=ref, old_status="pending", new_status="cancelled"
    )
    with Connection(settings.amqp_uri) as connection:
        connection.Producer(connection.channel()).publish(
            event.to_wire(), exchange=topology.event_exchange("orders"), routing_key=event.type
        )
    wait_for(lambda: catalog.get_product(lamp.id).stock == 2, 20, "release")
