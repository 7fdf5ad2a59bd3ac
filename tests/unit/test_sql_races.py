"""mesh.sql.lost_a_race: which database errors mean "run the transaction again"."""

from __future__ import annotations

import pymysql
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from mesh.sql import lost_a_race


class PgError(Exception):
    """psycopg's errors carry the SQLSTATE as ``sqlstate``."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__("conflict")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "orig",
    [
        pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock"),
        pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"),
        PgError("40P01"),
        PgError("40001"),
    ],
)
def test_deadlocks_and_serialization_failures_are_races(orig: Exception) -> None:
    assert lost_a_race(OperationalError("UPDATE ...", {}, orig))


def test_a_unique_key_taken_meanwhile_is_a_race() -> None:
    assert lost_a_race(IntegrityError("INSERT ...", {}, Exception("duplicate")))


@pytest.mark.parametrize(
    "orig",
    [
        pymysql.err.OperationalError(2003, "Can't connect to MySQL server"),
        PgError("08006"),
        Exception("database is locked"),
    ],
)
def test_an_outage_is_not_a_race(orig: Exception) -> None:
    assert not lost_a_race(OperationalError("SELECT 1", {}, orig))


def test_other_errors_are_not_races() -> None:
    assert not lost_a_race(ValueError("no"))
