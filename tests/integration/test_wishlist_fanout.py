"""A wishlist alert fans out in batches and resumes where a failure left it (embedded MongoDB)."""

from __future__ import annotations

import pytest
from pymongo.database import Database

from contracts.catalog import FieldChange, ProductUpdated
from contracts.users import UserIds, UserOut
from mesh.clients import make_mongo
from mesh.settings import Settings
from services.notifications import fanout, logic, messages
from tests.integration.test_notifications_store import outlets
from tests.unit.fakes import RecordingTasks
from tests.unit.service_fakes import FakeCatalog, FakeUsers

WISHLISTERS = 7


class FlakyUsers(FakeUsers):
    """Records each batch looked up; the lookups named in ``failing`` fail once."""

    def __init__(self, *failing: int) -> None:
        super().__init__()
        self.failing = set(failing)
        self.batches: list[list[int]] = []

    def get_users(self, user_ids: UserIds) -> list[UserOut]:
        self.batches.append(list(user_ids))
        if len(self.batches) in self.failing:
            raise TimeoutError("users did not answer")
        return super().get_users(user_ids)


@pytest.fixture
def db(settings: Settings) -> Database:
    database = make_mongo(settings)[settings.mongo_db]
    logic.prepare(database)
    return database


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fanout, "BATCH", 3)


def shop(users: FakeUsers) -> FakeCatalog:
    catalog = FakeCatalog()
    lamp = catalog.add("Lamp", price_cents=1500)
    for n in range(WISHLISTERS):
        catalog.wishlist_add(users.add(f"u{n}@example.com").id, lamp.id)
    return catalog


def price_drop() -> ProductUpdated:
    changes = {"price_cents": FieldChange(old=2000, new=1500)}
    return ProductUpdated(product_id=1, change="updated", changes=changes)


def told(db: Database, event: ProductUpdated) -> list[int]:
    docs = db[logic.COLLECTION].find({"event_id": str(event.event_id)})
    return sorted(doc["userId"] for doc in docs)


def test_a_failure_half_way_resumes_with_the_next_batch(db: Database) -> None:
    """The bug: a failure restarted the whole fan-out from the first wishlister."""
    users = FlakyUsers(2)  # the second batch's lookup fails once
    catalog, tasks, event = shop(users), RecordingTasks(), price_drop()
    with pytest.raises(TimeoutError):
        messages.notify_wishlisters(db, outlets(tasks), catalog, users, event)
    assert told(db, event) == [1, 2, 3]
    # Redelivered: the first batch is not looked up (nor told) again, none is skipped.
    assert messages.notify_wishlisters(db, outlets(tasks), catalog, users, event) == 4
    assert users.batches == [[1, 2, 3], [4, 5, 6], [4, 5, 6], [7]]
    assert told(db, event) == list(range(1, WISHLISTERS + 1))
    assert len(tasks.sent) == WISHLISTERS  # one e-mail each
    # Delivered once more after it finished: nobody is told twice.
    assert messages.notify_wishlisters(db, outlets(tasks), catalog, users, event) == 0
    assert len(users.batches) == 4 and len(tasks.sent) == WISHLISTERS


def test_a_batch_that_failed_part_way_tells_each_user_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = FakeUsers()
    catalog, tasks, event = shop(users), RecordingTasks(), price_drop()
    record, calls = logic.record, []

    def fails_on_the_fifth(*args: object) -> object:
        calls.append(args)
        if len(calls) == 5:
            raise ConnectionError("MongoDB went away")
        return record(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(messages, "record", fails_on_the_fifth)
    with pytest.raises(ConnectionError):
        messages.notify_wishlisters(db, outlets(tasks), catalog, users, event)
    assert told(db, event) == [1, 2, 3, 4]
    assert messages.notify_wishlisters(db, outlets(tasks), catalog, users, event) == 4
    assert told(db, event) == list(range(1, WISHLISTERS + 1))
    assert len(tasks.sent) == WISHLISTERS


def test_an_exact_number_of_batches_and_deleted_users(db: Database) -> None:
    users = FlakyUsers()
    catalog, tasks, event = shop(users), RecordingTasks(), price_drop()
    catalog.wishlist_add(99, 1)  # a user deleted since: left out, not an error
    catalog.wishlist_remove(7, 1)
    assert messages.notify_wishlisters(db, outlets(tasks), catalog, users, event) == 7
    assert users.batches == [[1, 2, 3], [4, 5, 6], [99]]
    assert told(db, event) == [1, 2, 3, 4, 5, 6]
