"""The notifications service's own read model of its recipients: the few user fields a
notification needs (id, e-mail, name), so an event costs no call to the users service.

One document per user in ``recipients``, keyed by ``userId`` (unique). It is filled from
``user.registered`` (whose event carries only the id: its handler looks the user up once and
stores it) and, on a miss, by whichever handler needed the user: a user registered before
this collection existed, or an order event handled before the registration event. A miss
asks the users service and stores the answer, so the answer is always the users service's.

Users cannot change their e-mail or name today (the users service has no such call;
``promote_admin`` changes ``is_admin``, which is not kept here), so a stored recipient never
goes stale. A future ``user.updated`` event must refresh (replace) the user's document here.
Only inserts and finds by the indexed ``userId`` are used: an upsert or an update scans the
collection on the embedded MongoDB server, and an insert that finds the user already stored
is the same idempotent "store once".
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from contracts.users import UsersApi

COLLECTION = "recipients"


class Addressee(Protocol):
    """Who a notification is for: ``contracts.users.UserOut`` or a stored :class:`Recipient`."""

    @property
    def id(self) -> int: ...

    @property
    def email(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Recipient:
    """A user as the notifications service keeps them."""

    id: int
    email: str
    name: str


def prepare(db: Database) -> None:
    """One document per user."""
    db[COLLECTION].create_index("userId", unique=True)


def _from_doc(doc: dict[str, Any]) -> Recipient:
    return Recipient(id=doc["userId"], email=doc["email"], name=doc["name"])


def remember(db: Database, user: Addressee) -> Recipient:
    """Store ``user``'s recipient fields once (again is a no-op); return them."""
    recipient = Recipient(id=user.id, email=user.email, name=user.name)
    # Stored already (a redelivery, or two handlers at once): the same fields.
    with suppress(DuplicateKeyError):
        db[COLLECTION].insert_one({"userId": user.id, "email": user.email, "name": user.name})
    return recipient


def recipient(db: Database, users: UsersApi, user_id: int) -> Recipient:
    """The user of ``user_id``: from the read model, else from the users service (stored
    then). NotFound as ``users.get_user`` for a user that does not exist."""
    doc = db[COLLECTION].find_one({"userId": user_id})
    if doc is not None:
        return _from_doc(doc)
    return remember(db, users.get_user(user_id))


def recipients(db: Database, users: UsersApi, user_ids: Sequence[int]) -> list[Recipient]:
    """The users of these ids that exist, in the order asked, as ``users.get_users``; only
    the ids missing from the read model are asked of the users service (one call)."""
    wanted = list(dict.fromkeys(user_ids))
    found = {r.id: r for r in map(_from_doc, db[COLLECTION].find({"userId": {"$in": wanted}}))}
    missing = [i for i in wanted if i not in found]
    if missing:
        found.update((user.id, remember(db, user)) for user in users.get_users(missing))
    return [found[i] for i in wanted if i in found]
