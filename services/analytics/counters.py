"""Add to a daily counter row in one statement, creating it when missing (an upsert).

One INSERT ... ON CONFLICT / ON DUPLICATE KEY UPDATE is atomic on every engine: two workers
adding to the same new row never lose an increment nor fail on each other's insert.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.sql.dml import Insert

from contracts.base import Event


def day_of(event: Event) -> date:
    """The UTC day an event happened on."""
    return event.occurred_at.astimezone(UTC).date()


def add(
    session: Session,
    model: type[DeclarativeBase],
    keys: Mapping[str, Any],
    amounts: Mapping[str, int],
) -> None:
    """Add ``amounts`` to the counters of the row of ``model`` named by ``keys``."""
    table = model.__table__
    assert isinstance(table, Table)
    values = {**keys, **amounts}
    increments = {name: table.c[name] + amount for name, amount in amounts.items()}
    session.execute(_upsert(session.get_bind().dialect.name, table, values, list(keys), increments))


def _upsert(
    dialect: str, table: Table, values: dict[str, Any], keys: list[str], set_: dict[str, Any]
) -> Insert:
    if dialect == "postgresql":
        pg = postgresql.insert(table).values(values)
        return pg.on_conflict_do_update(index_elements=keys, set_=set_)
    if dialect == "sqlite":
        lite = sqlite.insert(table).values(values)
        return lite.on_conflict_do_update(index_elements=keys, set_=set_)
    if dialect in {"mysql", "mariadb"}:
        return mysql.insert(table).values(values).on_duplicate_key_update(set_)
    raise NotImplementedError(f"no upsert for the {dialect} dialect")
