"""A store that does not answer is ``Unavailable`` to the caller and 503 with Retry-After at the
gateway, never a 500: a real catalog over a SQLite file that goes away, and a real pymongo
client on a port where nothing listens."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from flask.testing import FlaskClient
from pymongo import MongoClient
from pymongo.database import Database
from sqlalchemy.orm import sessionmaker

from contracts.base import Id
from contracts.catalog import CatalogApi, ProductCreate
from contracts.errors import NotFound, Unavailable
from gateway.app import create_app
from gateway.deps import Services
from mesh.sql import make_sessionmaker
from mesh.typed import UNAVAILABLE_MESSAGE, client, expose
from services.catalog.models import Base
from services.catalog.service import CatalogService
from tests.unit.fakes import RecordingSink
from tests.unit.gateway_helpers import TEST_CONFIG, FakeRedis, FakeRpc, assert_error
from tests.unit.service_fakes import FakeCatalog, FakeOrders, LocalTransport, wired

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Path, sessionmaker]]:
    folder = tmp_path / "store"
    folder.mkdir()
    sessions = make_sessionmaker(f"sqlite:///{folder / 'catalog.db'}", Base.metadata)
    yield folder, sessions
    sessions.kw["bind"].dispose()


@pytest.fixture
def transport(store: tuple[Path, sessionmaker]) -> LocalTransport:
    service = wired(
        CatalogService,
        context=None,
        db=store[1],
        events=RecordingSink(),
        orders=FakeOrders(FakeCatalog()),
    )
    return LocalTransport(catalog=service)


def make_unreachable(store: tuple[Path, sessionmaker]) -> None:
    """The database file goes away with its folder, and the pooled connections with it."""
    folder, sessions = store
    sessions.kw["bind"].dispose()
    shutil.rmtree(folder)


def test_a_sql_store_that_went_away_is_unavailable(store, transport) -> None:
    catalog = client(CatalogApi, "catalog", transport)
    product = catalog.create_product(ProductCreate(name="Lamp", price_cents=100))
    assert catalog.get_product(product.id).name == "Lamp"
    make_unreachable(store)
    with pytest.raises(Unavailable) as caught:
        catalog.get_product(product.id)
    assert caught.value.message == UNAVAILABLE_MESSAGE
    assert "catalog.db" not in str(caught.value)


def test_the_gateway_answers_503_with_retry_after(store, transport, tmp_path: Path) -> None:
    app = create_app(
        {**TEST_CONFIG, "UPLOADS_PATH": str(tmp_path / "uploads")},
        rpc=FakeRpc({}),
        redis=FakeRedis(),  # type: ignore[arg-type]
        services=Services.over(transport),
    )
    http: FlaskClient = app.test_client()
    assert_error(http.get("/api/products/7"), 404, "not_found")
    make_unreachable(store)
    response = http.get("/api/products/8")
    body = assert_error(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert "sqlite" not in body["message"].lower() and "catalog.db" not in body["message"]
    assert_error(http.get("/api/products"), 503, "unavailable")


class Shelves(Protocol):
    """A one-method Protocol, for a service over MongoDB."""

    def count(self, product_id: Id) -> int: ...


class ShelvesService:
    def __init__(self, db: Database[Any]) -> None:
        self.db = db

    @expose
    def count(self, product_id: Id) -> int:
        found = self.db["shelves"].find_one({"_id": product_id})
        if found is None:
            raise NotFound("no such shelf")
        return int(found["count"])


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_mongodb_that_does_not_answer_is_unavailable() -> None:
    mongo: MongoClient[Any] = MongoClient(
        f"mongodb://127.0.0.1:{closed_port()}/", serverSelectionTimeoutMS=300, connect=False
    )
    try:
        transport = LocalTransport(shelves=ShelvesService(mongo["mesh"]))
        shelves = client(Shelves, "shelves", transport)
        with pytest.raises(Unavailable) as caught:
            shelves.count(1)
        assert caught.value.message == UNAVAILABLE_MESSAGE
    finally:
        mongo.close()
