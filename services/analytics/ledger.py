"""Count each event exactly once: its ``processed_events`` row and its counters commit together.

The row is inserted first, so a second delivery of the same event (even a concurrent one,
which waits on the first's row lock) fails on the primary key and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from contracts.base import Event
from services.analytics.counters import add, day_of
from services.analytics.models import DailyEvents, ProcessedEvent
from services.analytics.tally import TALLIES

log = logging.getLogger(__name__)

ATTEMPTS = 3
"""Tries of one event's transaction against transient conflicts (deadlocks, a concurrent
first insert of the same order); after those the reliable handler retries later."""


# A Core INSERT: the ORM's unit of work costs more than the statement here.
_MARK = insert(ProcessedEvent)


class _Counted(Exception):
    """The event was counted before."""


def count(sessions: sessionmaker, event: Event) -> bool:
    """Count ``event`` unless it was counted already; True if counted now."""
    tally = TALLIES[event.type]
    for attempt in range(1, ATTEMPTS):
        try:
            return _count_once(sessions, event, tally)
        except (IntegrityError, OperationalError) as exc:
            extra = {"attempt": attempt, "error": type(exc).__name__}
            log.info("counting an event conflicted; trying again", extra=extra)
    return _count_once(sessions, event, tally)


def _count_once(
    sessions: sessionmaker, event: Event, tally: Callable[[Session, Any], None]
) -> bool:
    try:
        with sessions() as session, session.begin():
            _mark(session, event)
            add(
                session,
                DailyEvents,
                {"day": day_of(event), "event_type": event.type},
                {"events": 1},
            )
            tally(session, event)
    except _Counted:
        log.info("event already counted", extra={"event_id": str(event.event_id)})
        return False
    return True


def _mark(session: Session, event: Event) -> None:
    """Insert the event's processed_events row; _Counted if it is there already."""
    row = {"event_id": str(event.event_id), "event_type": event.type}
    try:
        session.execute(_MARK, {**row, "occurred_at": event.occurred_at})
    except IntegrityError:
        raise _Counted from None
