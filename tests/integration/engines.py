"""The SQL engines the services must work on, each with a fresh schema for a test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.orm import sessionmaker

from mesh.sql import make_sessionmaker
from tests.conftest import require

SERVERS = {
    "postgresql": os.environ.get(
        "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}


def reachable(url: str) -> bool:
    try:
        with create_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@contextmanager
def fresh_schema(engine: str, metadata: MetaData, tmp_path: Path) -> Iterator[sessionmaker]:
    """Sessions on ``metadata``'s tables, new: a SQLite file, or dropped and recreated on a
    server (whose "test" database the suites share, so only ``metadata``'s tables are touched).
    """
    if engine == "sqlite":
        url = f"sqlite:///{tmp_path / 'engine.db'}"
    else:
        url = SERVERS[engine]
        require(engine, lambda: reachable(url))
    factory = make_sessionmaker(url, metadata)
    bind = factory.kw["bind"]
    metadata.drop_all(bind)
    metadata.create_all(bind)
    try:
        yield factory
    finally:
        if engine != "sqlite":
            metadata.drop_all(bind)
        bind.dispose()
