"""SQLAlchemy engines and the nameko provider that hands a service its sessions."""

from __future__ import annotations

from typing import Any, cast

from nameko.extensions import DependencyProvider
from sqlalchemy import CursorResult, Engine, Executable, MetaData, create_engine, event
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mesh.migrations import upgrade
from mesh.settings import get_settings


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so processes can share it."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # hide_parameters: an error message must never carry e-mails or password hashes into logs.
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, hide_parameters=True
    )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_sessionmaker(url: str, metadata: MetaData | None = None) -> sessionmaker:
    """A session factory for ``url``. Given ``metadata``, missing tables are created from the
    models (tests do that); a service's database is migrated instead (``mesh.migrations``)."""
    engine = make_engine(url)
    if metadata is not None:
        metadata.create_all(engine)
    return sessionmaker(engine, expire_on_commit=False)


def inserted_id(session: Session, statement: Executable, values: dict[str, Any]) -> int:
    """Run a one-row INSERT in the session; the primary key the database gave the row."""
    key = cast(CursorResult[Any], session.execute(statement, values)).inserted_primary_key
    if key is None:  # an INSERT of one row always has one; this is for the type checker
        raise RuntimeError("the INSERT reported no primary key")
    return int(key[0])


def affected(session: Session, statement: Executable, params: dict[str, Any] | None = None) -> int:
    """Run an UPDATE or DELETE in the session; the number of rows it matched."""
    return int(cast(CursorResult[Any], session.execute(statement, params)).rowcount)


class Database(DependencyProvider):
    """Injects a ``sessionmaker`` bound to the service's own database, migrated at setup."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.sessions: sessionmaker | None = None

    def setup(self) -> None:
        url = get_settings().sql_url(self.service)
        upgrade(self.service, url)
        self.sessions = make_sessionmaker(url)

    def stop(self) -> None:
        if self.sessions is not None:
            self.sessions.kw["bind"].dispose()

    def get_dependency(self, worker_ctx: Any) -> sessionmaker:
        assert self.sessions is not None, "Database used before setup()"
        return self.sessions


# MySQL/MariaDB: deadlock, lock wait timeout; PostgreSQL: serialization failure, deadlock.
_CONFLICT_CODES = {1213, 1205}
_CONFLICT_STATES = {"40001", "40P01"}


def lost_a_race(exc: BaseException) -> bool:
    """True for an error that means "run the transaction again": a unique key taken
    meanwhile, or the engine breaking a deadlock between concurrent transactions."""
    if isinstance(exc, IntegrityError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    orig = exc.orig
    code = orig.args[0] if orig is not None and orig.args else None
    return code in _CONFLICT_CODES or getattr(orig, "sqlstate", None) in _CONFLICT_STATES
