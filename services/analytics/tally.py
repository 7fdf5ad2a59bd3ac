"""What each event adds to the daily counters: the definitions of every figure.

A day is the UTC day of the event's ``occurred_at``. Every event is counted once (see
``services/analytics/ledger.py``), and each adds one to ``events`` for its type and day.

- **signups**: ``user.registered`` events, i.e. users stored by the users service that day.
- **orders** (per day, product and currency): orders placed, from ``order.created``: one per
  order, on the day it was placed. ``items`` is the sum of their quantities, ``revenue_cents``
  the sum of their totals (gross: what was charged when placed, before any cancellation).
  The currency is the order's; ``order.created`` events published before they carried an
  amount are counted under no currency (``None`` in the reports), with no revenue.
- **cancellations** (same rows): orders that moved to ``cancelled``, from
  ``order.status_changed``: one per order, on the day it was cancelled, under the product and
  currency of the order (whenever it was placed), ``cancelled_cents`` the sum of their totals.
  A cancellation that arrives before its ``order.created`` is held in ``order_facts`` and
  counted when the latter arrives. Revenue net of cancellations over a period is revenue
  minus cancelled of that period (a cancellation counts on its own day, not its order's).
  Other status changes count in ``events`` only.
- **enrollments** (per day and course): ``enrollment.created`` events, i.e. students enrolled.
- **lesson_completions** (same rows): ``progress.updated`` events, i.e. lessons completed
  (once per student and lesson, as the courses service emits them).
- ``product.updated`` and ``course.published`` count in ``events`` only.

So the reports equal the source services' data: orders placed on day D of product P are the
orders rows created on D; cancellations on D are the cancelled orders last updated on D
(``cancelled`` is final); enrolments and completions on D are the courses service's rows of D.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session

from contracts.catalog import ProductUpdated
from contracts.courses import CoursePublished, EnrollmentCreated, ProgressUpdated
from contracts.orders import OrderCreated, OrderStatusChanged
from contracts.users import UserRegistered
from services.analytics.counters import add, day_of
from services.analytics.models import (
    UNPRICED,
    DailyCourse,
    DailyProduct,
    DailySignups,
    OrderFact,
)

log = logging.getLogger(__name__)


def signup(session: Session, event: UserRegistered) -> None:
    add(session, DailySignups, {"day": day_of(event)}, {"signups": 1})


def enrollment(session: Session, event: EnrollmentCreated) -> None:
    keys = {"day": day_of(event), "course_id": event.course_id}
    add(session, DailyCourse, keys, {"enrollments": 1})


def completion(session: Session, event: ProgressUpdated) -> None:
    keys = {"day": day_of(event), "course_id": event.course_id}
    add(session, DailyCourse, keys, {"lesson_completions": 1})


def nothing(session: Session, event: Any) -> None:
    """Events that count in ``events`` only."""


def _price(event: OrderCreated) -> tuple[str, int]:
    """The order's currency and total, or no currency and nothing for an event without them."""
    if event.total_cents is None or event.currency is None:
        return UNPRICED, 0
    return event.currency, event.total_cents


def _cancelled(session: Session, fact: OrderFact) -> None:
    assert fact.cancelled_on is not None and fact.product_id is not None
    keys = {"day": fact.cancelled_on, "product_id": fact.product_id, "currency": fact.currency}
    add(session, DailyProduct, keys, {"cancellations": 1, "cancelled_cents": fact.total_cents or 0})


# order.created is counted once per order placed: its statements are built once, on the
# table, and bound at each execution (building ORM statements cost more than running them).
_facts = cast(Table, OrderFact.__table__)
_FACT = select(_facts).where(_facts.c.order_id == bindparam("order_id")).with_for_update()
_NEW_FACT = insert(_facts)


def order_placed(session: Session, event: OrderCreated) -> None:
    """Count the order on its day; and its cancellation, if that arrived first."""
    held = session.execute(_FACT, {"order_id": event.order_id}).one_or_none()
    if held is not None and held.placed_on is not None:
        log.warning("order.created again for a counted order", extra={"order_id": event.order_id})
        return
    currency, total = _price(event)
    keys = {"day": day_of(event), "product_id": event.product_id, "currency": currency}
    add(session, DailyProduct, keys, {"orders": 1, "items": event.quantity, "revenue_cents": total})
    placed = {
        "product_id": event.product_id,
        "currency": currency,
        "total_cents": total,
        "placed_on": day_of(event),
    }
    if held is None:  # the common case: nothing known of the order yet
        session.execute(_NEW_FACT, {"order_id": event.order_id, "cancelled_on": None, **placed})
        return
    fact = session.get_one(OrderFact, event.order_id)  # its cancellation, held
    for name, value in placed.items():
        setattr(fact, name, value)
    if fact.cancelled_on is not None:
        _cancelled(session, fact)
    session.flush()


def order_status_changed(session: Session, event: OrderStatusChanged) -> None:
    """Count a cancellation once per order; hold it until order.created is counted."""
    if event.new_status != "cancelled":
        return
    fact = session.get(OrderFact, event.order_id, with_for_update=True)
    if fact is None:
        session.add(OrderFact(order_id=event.order_id, cancelled_on=day_of(event)))
    elif fact.cancelled_on is None:
        fact.cancelled_on = day_of(event)
        if fact.placed_on is not None:
            _cancelled(session, fact)
    session.flush()


TALLIES: dict[str, Callable[[Session, Any], None]] = {
    UserRegistered.type: signup,
    ProductUpdated.type: nothing,
    OrderCreated.type: order_placed,
    OrderStatusChanged.type: order_status_changed,
    CoursePublished.type: nothing,
    EnrollmentCreated.type: enrollment,
    ProgressUpdated.type: completion,
}
"""Event type -> what it adds, besides its count in ``events``."""
