"""Two replicas of every service and of the workers, on PostgreSQL: no effect happens twice.

A mesh of its own (``MESH_REPLICAS=2``, supervisord.d/replicas.conf), next to the suite's
one, with every SQL service on a fresh PostgreSQL database of the server TEST_POSTGRES_URL
names. Its replicas compete on each RPC and event queue, run each timer and each outbox
relay twice over, and migrate their databases at once when they start.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from kombu import Connection, Queue, binding
from pymongo import MongoClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from contracts.notifications import EMAIL_QUEUE
from mesh import topology
from mesh.migrations import sql_services
from tests.conftest import require
from tests.e2e import crash
from tests.e2e.conftest import (
    GATEWAY_PORT,
    MONGO_PORT,
    VHOST,
    Isolation,
    Mesh,
    User,
    eventually,
    running_mesh,
)
from tests.integration.engines import SERVERS, reachable
from tests.support.smtp_server import RecordingSmtpServer

pytestmark = pytest.mark.e2e

REPLICAS = 2
REPLICATED = ("users", "catalog", "orders", "notifications", "courses", "assistant", "analytics")
SINGLE = ("mongo", "content", "mirror", "gateway")
# Next to the suite's mesh, which may be running: ports one up, a Redis db and vhost of its own.
PLACE = Isolation(
    GATEWAY_PORT + 1,
    MONGO_PORT + 1,
    int(os.environ.get("E2E_REPLICAS_REDIS_DB", "13")),
    f"{VHOST}_replicas",
)
# Its databases: <prefix>_users, <prefix>_catalog, ... on TEST_POSTGRES_URL's server.
DB_PREFIX = os.environ.get("E2E_REPLICAS_DB_PREFIX", "mesh_e2e_replicas")
STOCK = 4
SHOPPERS = 3
ORDERS_EACH = 4  # SHOPPERS * ORDERS_EACH orders at once for STOCK items


def fresh_databases() -> dict[str, str]:
    """``{service: url}``: a new, empty PostgreSQL database for each SQL service."""
    server = SERVERS["postgresql"]
    require("postgresql", lambda: reachable(server))
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    urls = {}
    with admin.connect() as connection:
        for service in sql_services():
            name = f"{DB_PREFIX}_{service}"
            # FORCE: a killed earlier run may have left its processes connected.
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {name}"))
            urls[service] = make_url(server).set(database=name).render_as_string(False)
    admin.dispose()
    return urls


@pytest.fixture(scope="module")
def databases() -> dict[str, str]:
    return fresh_databases()


@pytest.fixture(scope="module")
def replicated(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    amqp_uri: str,
    redis_url: str,
    rabbitmqctl: list[str] | None,
    smtp_server: RecordingSmtpServer,
    databases: dict[str, str],
) -> Iterator[Mesh]:
    # Without a vhost of its own (rabbitmqctl) it would share "/" with the suite's mesh.
    require("rabbitmqctl", lambda: rabbitmqctl is not None)
    extra = {f"{service.upper()}_DATABASE_URL": url for service, url in databases.items()}
    extra.update(
        MESH_REPLICAS=str(REPLICAS),
        MESH_LAYOUT="replicas",
        # Every order of the burst must reach orders: no gateway-side refusal, no timeout.
        RPC_MAX_IN_FLIGHT="64",
        RPC_TIMEOUT="30",
    )
    with running_mesh(
        request, tmp_path_factory, amqp_uri, redis_url, rabbitmqctl, smtp_server, PLACE, extra
    ) as m:
        # /ready needs one process of each service: wait for every replica to consume.
        queues = [f"rpc-{service}" for service in REPLICATED] + [EMAIL_QUEUE]
        eventually(
            lambda: all(consumers(m, q) >= REPLICAS for q in queues),
            timeout=120,
            interval=0.5,
            what=f"{REPLICAS} consumers on each of {queues}",
        )
        yield m


def consumers(mesh: Mesh, queue: str) -> int:
    with Connection(mesh.env["AMQP_URI"]) as connection:
        declared = connection.default_channel.queue_declare(queue, passive=True)
        return int(declared.consumer_count)


def test_each_service_and_the_workers_run_twice(replicated: Mesh) -> None:
    status = replicated.supervisorctl("status").stdout
    running = {line.split()[0] for line in status.splitlines() if " RUNNING " in line}
    twice = {f"{p}:{p}-{i}" for p in (*REPLICATED, "workers") for i in range(REPLICAS)}
    assert twice | set(SINGLE) == running, status
    logs = {path.name for path in (replicated.var_dir / "log").glob("*.log")}
    assert {"users-0.log", "users-1.log", "workers-1.log", "gateway.log"} <= logs


def test_a_burst_of_orders_sells_the_stock_once_and_each_event_has_one_effect(
    replicated: Mesh, databases: dict[str, str]
) -> None:
    with event_tap(replicated) as tap:
        admin = {"Authorization": f"Bearer {replicated.admin_token()}"}
        product = requests.post(
            replicated.url("/api/products"),
            json={"name": f"Lamp {uuid.uuid4().hex[:6]}", "price_cents": 500, "stock": STOCK},
            headers=admin,
            timeout=30,
        )
        assert product.status_code == 201, product.text
        product_id = product.json()["id"]
        shoppers = [replicated.register() for _ in range(SHOPPERS)]
        burst = [bearer(replicated, s) for s in shoppers for _ in range(ORDERS_EACH)]

        def place(headers: dict[str, str]) -> requests.Response:
            body = {"product_id": product_id, "quantity": 1}
            return requests.post(
                replicated.url("/api/orders"), json=body, headers=headers, timeout=60
            )

        with ThreadPoolExecutor(len(burst)) as pool:
            answers = list(pool.map(place, burst))

        codes = Counter(a.status_code for a in answers)
        assert codes == {201: STOCK, 409: len(burst) - STOCK}, [a.text for a in answers]
        placed = [a.json() for a in answers if a.status_code == 201]
        assert_sold_once(databases, product_id)
        # Both orders processes took part (an order placed, or refused): RabbitMQ spread the
        # burst over the replicas.
        for replica in ("orders-0", "orders-1"):
            handled = log_count(replicated, replica, '"order created"')
            refused = log_count(replicated, replica, "[orders.create_order]")
            assert handled + refused, f"{replica} took no order of the burst"

        wanted = [{"userId": u.id, "type": "user.registered"} for u in shoppers]
        wanted += [{"orderId": o["id"], "type": "order.created"} for o in placed]
        assert_one_notification_and_email_each(replicated, wanted)
        assert_each_row_published_once(tap, databases)
    assert log_count(replicated, "notifications-*", "notification already stored") == 0


def bearer(mesh: Mesh, user: User) -> dict[str, str]:
    return {"Authorization": f"Bearer {mesh.login(user)['access_token']}"}


def assert_sold_once(databases: dict[str, str], product_id: int) -> None:
    """STOCK items, STOCK orders, STOCK open reservations: none sold twice, none lost."""
    with query(databases["catalog"]) as run:
        assert run("SELECT stock FROM products WHERE id = :p", p=product_id) == [(0,)]
        held = "SELECT count(*), sum(quantity) FROM reservations WHERE product_id = :p"
        assert run(held + " AND released_at IS NULL", p=product_id) == [(STOCK, STOCK)]
    with query(databases["orders"]) as run:
        assert run("SELECT count(*) FROM orders WHERE product_id = :p", p=product_id) == [(STOCK,)]


def assert_one_notification_and_email_each(mesh: Mesh, wanted: list[dict[str, Any]]) -> None:
    """One notification matching each of ``wanted``, and one e-mail of it (a duplicate
    delivery shows at the SMTP server, which keeps every message)."""
    client: MongoClient[dict[str, Any]] = MongoClient(mesh.mongo_uri, serverSelectionTimeoutMS=5000)
    try:
        docs = client[mesh.mongo_db]["notifications"]

        def keys() -> list[str]:
            found = [[d["key"] for d in docs.find(match, {"key": 1})] for match in wanted]
            return [k for (k,) in found] if all(len(f) == 1 for f in found) else []

        stored: list[str] = eventually(keys, timeout=60, what=f"notifications {wanted}")
    finally:
        client.close()
    eventually(lambda: all(mesh.emails_for(k) for k in stored), timeout=60, what="the e-mails")
    time.sleep(1.5)  # a second delivery would arrive within this
    assert [len(mesh.emails_for(k)) for k in stored] == [1] * len(stored)


def assert_each_row_published_once(tap: crash.EventTap, databases: dict[str, str]) -> None:
    """Every outbox row of every SQL service reached the event exchanges exactly once."""
    stored: set[str] = set()
    for service, url in databases.items():
        with query(url) as run:
            if run("SELECT to_regclass('outbox')") == [(None,)]:
                continue  # a service that publishes nothing
            pending = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            eventually(lambda: run(pending) == [(0,)], timeout=30, what=f"{service}'s relays")
            stored |= {row[0] for row in run("SELECT event_id FROM outbox")}
    assert stored, "the test published no event"
    eventually(
        lambda: stored <= {e["event_id"] for e in tap.matching()}, timeout=30, what="every event"
    )
    time.sleep(1.0)  # a second publication would arrive within this
    seen = Counter(e["event_id"] for e in tap.matching())
    twice = {event_id: n for event_id, n in seen.items() if n > 1}
    assert not twice, f"published more than once: {twice}"


@contextmanager
def query(url: str) -> Iterator[Callable[..., list[tuple[Any, ...]]]]:
    """``run(sql, **params)``: every row, each call seeing what was committed before it."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:

            def run(sql: str, **params: Any) -> list[tuple[Any, ...]]:
                rows = [tuple(row) for row in connection.execute(text(sql), params)]
                connection.rollback()
                return rows

            yield run
    finally:
        engine.dispose()


@contextmanager
def event_tap(mesh: Mesh) -> Iterator[crash.EventTap]:
    """A queue of the test's own bound to every event exchange: one entry per publication."""
    bindings = [binding(topology.event_exchange(s), routing_key="#") for s in topology.sources()]
    with Connection(mesh.env["AMQP_URI"]) as connection:
        queue = Queue(f"e2e-tap-{uuid.uuid4().hex[:8]}", bindings=bindings, auto_delete=True)
        bound = queue(connection.channel())
        bound.declare()
        try:
            yield crash.EventTap(bound)
        finally:
            bound.delete()


def log_count(mesh: Mesh, pattern: str, needle: str) -> int:
    """Lines containing ``needle`` in the logs ``<pattern>.log`` of the mesh."""
    return sum(
        path.read_text(errors="replace").count(needle)
        for path in (mesh.var_dir / "log").glob(f"{pattern}.log")
    )
