"""Notifications logic and the e-mail actor against the embedded MongoDB server."""

from __future__ import annotations

import time

import pytest
from pymongo.database import Database

from contracts.notifications import EMAIL_QUEUE, SEND_EMAIL_ACTOR
from contracts.users import UserRegistered
from mesh.clients import make_mongo
from mesh.errors import InvalidInput
from mesh.settings import Settings
from services.notifications import actors, logic
from tests.unit.fakes import RecordingTasks

USER = {"id": 5, "email": "eve@example.com", "name": "Eve"}


@pytest.fixture
def db(settings: Settings) -> Database:
    database = make_mongo(settings)[settings.mongo_db]
    logic.prepare(database)
    return database


def test_an_event_handled_twice_stores_one_notification_and_one_email(db: Database) -> None:
    tasks = RecordingTasks()
    event = UserRegistered(user_id=5)
    first = logic.record(db, tasks, event, logic.welcome(event, USER))
    second = logic.record(db, tasks, event, logic.welcome(event, USER))
    assert first["_id"] == second["_id"]
    assert db[logic.COLLECTION].count_documents({"event_id": str(event.event_id)}) == 1
    assert tasks.sent == [(EMAIL_QUEUE, SEND_EMAIL_ACTOR, (str(event.event_id),))]


def test_list_is_mine_newest_first_and_limited(db: Database) -> None:
    tasks = RecordingTasks()
    events = []
    for _ in range(3):
        event = UserRegistered(user_id=5)
        logic.record(db, tasks, event, logic.welcome(event, USER))
        events.append(str(event.event_id))
        time.sleep(0.01)
    other = UserRegistered(user_id=6)
    logic.record(db, tasks, other, logic.welcome(other, {**USER, "id": 6}))

    listed = logic.list_for_user(db, 5, 2)
    assert [n["event_id"] for n in listed] == events[::-1][:2]
    assert all(n["user_id"] == 5 for n in listed)
    assert listed[0]["created_at"].endswith("Z")


@pytest.mark.parametrize(("user_id", "limit"), [(0, 5), (5, 0), (5, 51), ("5", 5), (5, "x")])
def test_list_refuses_bad_arguments(db: Database, user_id: object, limit: object) -> None:
    with pytest.raises(InvalidInput):
        logic.list_for_user(db, user_id, limit)


def test_the_email_is_written_once(db: Database, settings: Settings) -> None:
    event = UserRegistered(user_id=5)
    logic.record(db, RecordingTasks(), event, logic.welcome(event, USER))
    assert actors.deliver_email(db, settings, str(event.event_id)) is True
    assert actors.deliver_email(db, settings, str(event.event_id)) is False
    files = list((settings.mesh_var_dir / "mail").glob("*.eml"))
    assert [f.name for f in files] == [f"{event.event_id}.eml"]
    text = files[0].read_text()
    assert "To: eve@example.com" in text and "Welcome to the mesh" in text


def test_the_email_of_an_unknown_event_is_retried_not_dropped(
    db: Database, settings: Settings
) -> None:
    with pytest.raises(LookupError):
        actors.deliver_email(db, settings, "no-such-event")
