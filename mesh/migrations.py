"""Schema migrations with alembic: each SQL service keeps its own in services/<name>/migrations.

A service brings its database to the newest revision when it starts (``upgrade``). To write a
migration after changing a service's models::

    .venv/bin/python -m mesh.migrations revision users "add a column"

which compares the models with a scratch database at the newest revision and autogenerates
``services/users/migrations/versions/<rev>_<slug>.py`` for review. To migrate every SQL
service's configured database at once (a deployment's one-shot job, before the services
start)::

    .venv/bin/python -m mesh.migrations upgrade
"""

from __future__ import annotations

import fcntl
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData, create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from mesh.settings import Settings, get_settings

# Held while a process migrates a database, so that replicas starting together take turns.
PG_LOCK_KEY = 0x6D657368  # "mesh"; PostgreSQL's advisory locks are per database
MYSQL_LOCK_SECONDS = 600


def config(service: str, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", f"services.{service}:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(service: str, url: str) -> None:
    """Bring ``service``'s database at ``url`` to the newest schema."""
    command.upgrade(config(service, url), "head")


def run_env(metadata: MetaData) -> None:
    """The body of every service's ``env.py``: migrate online, in one transaction."""
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as connection, exclusive(connection):
            # Batch mode lets SQLite, which cannot ALTER most things, rebuild a table instead.
            context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


@contextmanager
def exclusive(connection: Connection) -> Iterator[None]:
    """Hold the database's migration lock: replicas of a service starting at once (supervisord
    with MESH_REPLICAS, several machines) would otherwise run the same migration twice, and
    all but one fail. A lock per server database; for SQLite, a file next to the database."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        _locked(connection, "SELECT pg_advisory_lock(:key)", key=PG_LOCK_KEY)
        try:
            yield
        finally:
            _release(connection, "SELECT pg_advisory_unlock(:key)", key=PG_LOCK_KEY)
    elif dialect in ("mysql", "mariadb"):
        name = f"mesh.migrations.{connection.engine.url.database}"[:64]  # server-wide names
        got = _locked(
            connection, "SELECT GET_LOCK(:name, :wait)", name=name, wait=MYSQL_LOCK_SECONDS
        )
        if got != 1:
            raise TimeoutError(f"another process held {name} for {MYSQL_LOCK_SECONDS}s")
        try:
            yield
        finally:
            _release(connection, "SELECT RELEASE_LOCK(:name)", name=name)
    else:
        with _file_lock(connection.engine.url.database):
            yield


def _locked(connection: Connection, sql: str, **params: object) -> object:
    """Run a lock statement and commit at once: the lock is the session's, and alembic must
    find no transaction open (it would leave an open one to its caller, uncommitted)."""
    value = connection.execute(text(sql), params).scalar()
    connection.commit()
    return value


def _release(connection: Connection, sql: str, **params: object) -> None:
    # A connection a failed migration broke cannot say it; closing it frees the lock anyway.
    with suppress(SQLAlchemyError):
        _locked(connection, sql, **params)


@contextmanager
def _file_lock(database: str | None) -> Iterator[None]:
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}-migrating", "a") as handle:  # beside SQLite's own -wal, -shm
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def sql_services() -> list[str]:
    """Every service with a database of its own: one ``<service>_database_url`` setting each."""
    suffix = "_database_url"
    return [name.removesuffix(suffix) for name in Settings.model_fields if name.endswith(suffix)]


def upgrade_all() -> None:
    """Bring every SQL service's configured database to the newest schema."""
    settings = get_settings()
    for service in sql_services():
        upgrade(service, settings.sql_url(service))
        print(f"{service}: at the newest schema")


USAGE = "usage: python -m mesh.migrations revision SERVICE MESSAGE | upgrade"


def main(argv: list[str]) -> int:
    if argv == ["upgrade"]:
        upgrade_all()
        return 0
    if len(argv) != 3 or argv[0] != "revision":
        print(USAGE, file=sys.stderr)
        return 2
    _, service, message = argv
    # Compare the models with a scratch database at head, never with a live one.
    with tempfile.TemporaryDirectory() as folder:
        cfg = config(service, f"sqlite:///{folder}/draft.db")
        command.upgrade(cfg, "head")
        command.revision(cfg, message=message, autogenerate=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
