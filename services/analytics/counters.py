"""Add to a daily counter row in one statement, creating it when missing (an upsert).

One INSERT ... ON CONFLICT / ON DUPLICATE KEY UPDATE is atomic on every engine: two workers
adding to the same new row never lose an increment nor fail on each other's insert.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date
from functools import lru_cache
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
    dialect = session.get_bind().dialect.name
    statement = _upsert(dialect, table, tuple(keys), tuple(amounts))
    session.execute(statement, {**keys, **amounts})


@lru_cache(maxsize=256)
def _upsert(dialect: str, table: Table, keys: tuple[str, ...], amounts: tuple[str, ...]) -> Insert:
    """The upsert of one (table, keys, counters) shape, built once: the values are bound at
    execution, and each counter adds the value the insert would have written."""
    if dialect in {"postgresql", "sqlite"}:
        insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
        added = {name: table.c[name] + insert.excluded[name] for name in amounts}
        return insert.on_conflict_do_update(index_elements=list(keys), set_=added)
    if dialect in {"mysql", "mariadb"}:
        mine = mysql.insert(table)
        return mine.on_duplicate_key_update(
            {name: table.c[name] + mine.inserted[name] for name in amounts}
        )
    raise NotImplementedError(f"no upsert for the {dialect} dialect")
