"""Each service's migrations build exactly the schema its models describe, on every engine."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import make_url

from mesh.migrations import upgrade
from tests.conftest import require
from tests.integration.engines import SERVERS, reachable

ROOT = Path(__file__).resolve().parents[2]


def service_models() -> dict[str, MetaData]:
    """The models of every SQL service: each one with a ``migrations`` folder."""
    return {
        folder.parent.name: importlib.import_module(
            f"services.{folder.parent.name}.models"
        ).Base.metadata
        for folder in sorted((ROOT / "services").glob("*/migrations"))
    }


MODELS = service_models()


def fresh_database(engine: str, name: str, tmp_path: Path) -> str:
    """The URL of a new, empty database called ``name``."""
    if engine == "sqlite":
        return f"sqlite:///{tmp_path / name}.db"
    server = SERVERS[engine]
    require(engine, lambda: reachable(server))
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", *sorted(SERVERS)])
def engine_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("service", sorted(MODELS))
def test_migrations_match_the_models(engine_name: str, service: str, tmp_path: Path) -> None:
    url = fresh_database(engine_name, f"mesh_migrations_{service}", tmp_path)
    upgrade(service, url)
    upgrade(service, url)  # a second start finds nothing to do
    engine = create_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), MODELS[service])
    engine.dispose()
    assert differences == [], f"{service}: models and migrations differ: {differences}"
