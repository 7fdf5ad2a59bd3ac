"""Each service's migrations build exactly the schema its models describe, on every engine."""

from __future__ import annotations

import importlib
import subprocess
import sys
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


# Each process imports, says so, then waits for the go: the migrations start together.
RACER = """
import sys
from mesh.migrations import upgrade
print("ready", flush=True)
sys.stdin.readline()
upgrade("users", sys.argv[1])
"""


def test_replicas_starting_at_once_take_turns_to_migrate(engine_name: str, tmp_path: Path) -> None:
    """mesh.migrations.exclusive: without the lock, all but one of the racers fail."""
    url = fresh_database(engine_name, "mesh_migrations_race", tmp_path)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    results = [racer.communicate(timeout=120) for racer in racers]
    assert [r.returncode for r in racers] == [0, 0, 0], [err[-2000:] for _, err in results]
    engine = create_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), MODELS["users"])
    engine.dispose()
    assert differences == []
