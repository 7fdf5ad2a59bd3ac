"""One event told to many users, a batch at a time, resumable where a failure left it.

The progress of each fan-out is one MongoDB document keyed by the event's id: the last user
id of the last batch fully told, and ``done`` once every batch is. A redelivered event (its
handler failed half-way) resumes after that id, so a later batch is never skipped and an
earlier one is not fetched again; within the batch that failed, the notifications already
stored are kept once by their (event, user) key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from contracts.base import Event

COLLECTION = "fanouts"
BATCH = 200


def _progress(db: Any, event: Event) -> dict[str, Any]:
    """The event's progress document, created at its start."""
    key = {"_id": str(event.event_id)}
    found = db[COLLECTION].find_one(key)
    if found is not None:
        return dict(found)
    start = {**key, "after": 0, "done": False, "startedAt": datetime.now(UTC)}
    try:
        db[COLLECTION].insert_one(start)
    except DuplicateKeyError:  # a concurrent delivery of the same event started it
        return dict(db[COLLECTION].find_one(key) or start)
    return start


def _save(db: Any, event: Event, **fields: Any) -> None:
    db[COLLECTION].update_one({"_id": str(event.event_id)}, {"$set": fields})


def fan_out(
    db: Any,
    event: Event,
    page: Callable[[int, int], list[int]],
    tell: Callable[[list[int]], object],
    batch: int | None = None,
) -> int:
    """Tell each page of recipients after the last one done; how many user ids were told.

    ``page(after, limit)`` gives the next recipient ids, ascending, above ``after``;
    ``tell(ids)`` tells a batch and may raise: the batch is then told again on redelivery.
    """
    batch = batch or BATCH
    progress = _progress(db, event)
    if progress.get("done"):
        return 0
    after, told = int(progress.get("after", 0)), 0
    while True:
        ids = page(after, batch)
        if ids:
            tell(ids)
            told, after = told + len(ids), ids[-1]
        if len(ids) < batch:
            _save(db, event, after=after, done=True)
            return told
        _save(db, event, after=after)
