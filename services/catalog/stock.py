"""Stock reservations for orders: taken atomically, idempotent by order_ref, released once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple, cast

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from contracts.catalog import FieldChange, ProductUpdated, ReserveRequest
from contracts.catalog import Reservation as ReservationOut
from contracts.errors import Conflict, NotFound
from contracts.orders import OrderRefState, OrderStatusChanged, reservation_fate
from mesh.outbox import EventSink
from mesh.sql import affected
from services.catalog.models import Product, Reservation, utcnow


def _out(reservation: Reservation) -> ReservationOut:
    return ReservationOut.model_validate(reservation, from_attributes=True)


def _stock_changed(product_id: int, old: int, new: int) -> ProductUpdated:
    changes = {"stock": FieldChange(old=old, new=new)}
    return ProductUpdated(product_id=product_id, change="updated", changes=changes)


def _find(sessions: sessionmaker, order_ref: str) -> Reservation | None:
    with sessions() as session:
        return session.scalar(select(Reservation).where(Reservation.order_ref == order_ref))


def _existing(reservation: Reservation, request: ReserveRequest) -> ReservationOut:
    """The stored reservation, if the repeated request asks for the same, still-held stock."""
    if (reservation.product_id, reservation.quantity) != (request.product_id, request.quantity):
        raise Conflict("order_ref already reserved other stock")
    if reservation.released_at is not None:
        # Its stock went back (a cancel, or settling): a late retry must not pass as reserved.
        raise Conflict("order_ref was released")
    return _out(reservation)


class Taken(NamedTuple):
    """A product's stock after a reservation took from it, and its price."""

    stock: int
    price_cents: int
    currency: str


# The reservation path's statements, on the tables rather than the mapped classes, built once
# and bound at each execution: an order takes them all, and the ORM's handling and building
# each statement and its cache key cost SQLAlchemy more than SQLite spends running it.
_products = cast(Table, Product.__table__)
_reservations = cast(Table, Reservation.__table__)
_TAKE = (
    update(_products)
    .where(
        _products.c.id == bindparam("product_id"),
        _products.c.deleted_at.is_(None),
        _products.c.stock >= bindparam("quantity"),
    )
    .values(stock=_products.c.stock - bindparam("quantity"), updated_at=bindparam("now"))
)
_PRICED = select(
    _products.c.stock, _products.c.price_cents, _products.c.currency, _products.c.deleted_at
).where(_products.c.id == bindparam("product_id"))
_HOLD = insert(_reservations)


def _take(session: Session, product_id: int, quantity: int) -> Taken:
    """Decrement stock only if enough is there; one UPDATE, so two buyers never share an item."""
    params = {"product_id": product_id, "quantity": quantity, "now": utcnow()}
    taken = affected(session, _TAKE, params)
    product = session.execute(_PRICED, params).one_or_none()
    if product is None or product.deleted_at is not None:
        raise NotFound("product not found")
    if taken != 1:
        raise Conflict("not enough stock")
    return Taken(product.stock, product.price_cents, product.currency)


def _reserve(sessions: sessionmaker, events: EventSink, request: ReserveRequest) -> ReservationOut:
    with sessions() as session, session.begin():
        product = _take(session, request.product_id, request.quantity)
        reservation = ReservationOut(
            order_ref=request.order_ref,
            product_id=request.product_id,
            quantity=request.quantity,
            unit_price_cents=product.price_cents,
            currency=product.currency,
        )
        session.execute(_HOLD, {**reservation.model_dump(), "created_at": utcnow()})
        old = product.stock + request.quantity
        events.add(session, _stock_changed(request.product_id, old, product.stock))
    return reservation


def reserve_stock(
    sessions: sessionmaker, events: EventSink, request: ReserveRequest
) -> ReservationOut:
    """Take stock for one order; a repeated ``order_ref`` returns its reservation untouched.

    The first attempt is the common case, so it goes straight to the reservation; only a
    failure asks whether the ref was reserved before (a retry, or a concurrent call that
    committed first: either way ours rolled back and changed nothing)."""
    try:
        return _reserve(sessions, events, request)
    except (IntegrityError, Conflict, NotFound):
        existing = _find(sessions, request.order_ref)
        if existing is None:
            raise
        return _existing(existing, request)


def _give_back(session: Session, reservation: Reservation) -> int:
    """Add the reservation's quantity back to its product; the stock afterwards."""
    session.execute(
        update(Product)
        .where(Product.id == reservation.product_id)
        .values(stock=Product.stock + reservation.quantity, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return session.scalars(select(Product.stock).where(Product.id == reservation.product_id)).one()


def release_stock(sessions: sessionmaker, events: EventSink, order_ref: str) -> bool:
    """Give a reservation's stock back; True only for the one call that released it."""
    with sessions() as session, session.begin():
        released = affected(
            session,
            update(Reservation)
            .where(Reservation.order_ref == order_ref, Reservation.released_at.is_(None))
            .values(released_at=utcnow())
            .execution_options(synchronize_session=False),
        )
        if released != 1:
            return False  # unknown, or another call released it first
        reservation = session.scalars(
            select(Reservation).where(Reservation.order_ref == order_ref)
        ).one()
        new = _give_back(session, reservation)
        old = new - reservation.quantity
        events.add(session, _stock_changed(reservation.product_id, old, new))
    return True


def release_cancelled(sessions: sessionmaker, events: EventSink, event: OrderStatusChanged) -> bool:
    """Release the stock of an order that was cancelled; any other status change is ignored."""
    if event.new_status != "cancelled":
        return False
    return release_stock(sessions, events, event.order_ref)


def stale_refs(sessions: sessionmaker, older_than: datetime, limit: int = 500) -> list[str]:
    """Open reservations (neither released nor kept for good) taken before ``older_than`` and
    not checked since."""
    with sessions() as session:
        return list(
            session.scalars(
                select(Reservation.order_ref)
                .where(
                    Reservation.released_at.is_(None),
                    Reservation.confirmed_at.is_(None),
                    Reservation.created_at < older_than,
                    or_(Reservation.checked_at.is_(None), Reservation.checked_at < older_than),
                )
                .order_by(Reservation.id)
                .limit(limit)
            )
        )


class Settled(NamedTuple):
    """What one pass of :func:`settle_stale` did with the reservations it looked at."""

    kept: int  # the order can no longer be cancelled: confirmed for good
    open: int  # the order may still be cancelled: asked again after the grace period
    released: int  # the order was cancelled, or never stored: the stock went back


def _mark(session: Session, refs: list[str], **values: datetime) -> None:
    if refs:
        session.execute(
            update(Reservation)
            .where(Reservation.order_ref.in_(refs), Reservation.released_at.is_(None))
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def settle_stale(
    sessions: sessionmaker,
    events: EventSink,
    order_states: Callable[[list[str]], list[OrderRefState]],
    older_than: datetime,
) -> Settled:
    """Settle the reservations left open past ``older_than``, by their order's status.

    A cancel whose release is lost (the catalog's store down until the handler's retries
    ran out), or an orders process that dies between reserving and storing, leaves stock
    taken for no live order. The orders service says which order holds each reservation
    (``order_states``): a cancelled or never-stored order's stock goes back; an order that
    can no longer be cancelled keeps it for good; any other is asked about again a grace
    period later. Each verdict follows from a status no later change can undo, so a cancel
    racing this pass is still released (by its event, or by the next pass). If the question
    fails, nothing is released: a live order never loses its stock to an unreachable service.
    """
    refs = stale_refs(sessions, older_than)
    if not refs:
        return Settled(0, 0, 0)
    fates = {state.order_ref: reservation_fate(state.status) for state in order_states(refs)}
    kept = [ref for ref in refs if fates.get(ref) == "kept"]
    still = [ref for ref in refs if fates.get(ref) == "open"]
    with sessions() as session, session.begin():
        now = utcnow()
        _mark(session, kept, confirmed_at=now)
        _mark(session, still, checked_at=now)
    gone = [ref for ref in refs if fates.get(ref, "released") == "released"]
    released = sum(release_stock(sessions, events, ref) for ref in gone)
    return Settled(len(kept), len(still), released)
