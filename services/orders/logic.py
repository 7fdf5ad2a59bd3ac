"""What the orders service does, as plain functions over its adapters."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from contracts.base import Viewer, is_id
from contracts.catalog import Reservation, ReserveRequest
from contracts.errors import Conflict, MeshError, NotFound, Unavailable
from contracts.orders import (
    TRANSITIONS,
    OrderCreate,
    OrderCreated,
    OrderOut,
    OrderPage,
    OrderQuery,
    OrderRefs,
    OrderRefState,
    OrderStatusChanged,
    StatusChange,
)
from mesh.outbox import EventSink
from mesh.sql import affected, inserted_id
from services.orders.clients import Catalog
from services.orders.models import Order, utcnow

log = logging.getLogger(__name__)

ORDER_NOT_FOUND = "order not found"
DEFAULT_MAX_PENDING = 10  # the default of ORDER_MAX_PENDING_PER_USER
SLOT_ATTEMPTS = 5
EXPIRY_BATCH = 500


def to_out(order: Order) -> OrderOut:
    return OrderOut.model_validate(
        {
            "id": order.id,
            "user_id": order.user_id,
            "product_id": order.product_id,
            "quantity": order.quantity,
            "unit_price": order.unit_price_cents,
            "total": order.total_cents,
            "currency": order.currency,
            "status": order.status,
            "created_at": order.created_at,
            "updated_at": order.updated_at,
        }
    )


# ---------------------------------------------------------------- create


def _release(catalog: Catalog, order_ref: str) -> None:
    """Give the stock back; a failure is logged, never raised (release is idempotent)."""
    try:
        catalog.release(order_ref)
    except Exception:
        log.exception("stock not released", extra={"order_ref": order_ref})


def _reserve(catalog: Catalog, request: OrderCreate, order_ref: str) -> Reservation:
    reserve = ReserveRequest(
        product_id=request.product_id, quantity=request.quantity, order_ref=order_ref
    )
    try:
        return catalog.reserve(reserve)
    except NotFound:
        raise NotFound("product not found") from None
    except MeshError:
        raise  # Conflict "not enough stock": nothing was taken
    except Exception as exc:
        # No answer in time, or a bad one: the stock may have been taken, so give it back.
        _release(catalog, order_ref)
        raise Unavailable("the catalog did not answer; nothing was ordered") from exc


# The create path's statements, built once and bound at each execution: building an ORM
# statement and its cache key, and the ORM's unit of work, cost SQLAlchemy more than SQLite
# spends running them. The order is inserted into the table, not through the mapped class.
_orders = cast(Table, Order.__table__)
_PLACE = insert(_orders)
_BY_KEY = select(Order).where(
    Order.user_id == bindparam("user_id"), Order.idempotency_key == bindparam("key")
)
_SLOTS_HELD = select(_orders.c.pending_slot).where(
    _orders.c.user_id == bindparam("user_id"), _orders.c.pending_slot.is_not(None)
)


def _store(
    sessions: sessionmaker,
    events: EventSink,
    user_id: int,
    reservation: Reservation,
    idempotency_key: str | None,
    max_pending: int,
) -> Order:
    """Insert the order, in a free pending slot, and its order.created event in one transaction."""
    with sessions() as session, session.begin():
        now = utcnow()
        values = {
            "pending_slot": _free_slot(session, user_id, max_pending) if max_pending else None,
            "user_id": user_id,
            "product_id": reservation.product_id,
            "quantity": reservation.quantity,
            "unit_price_cents": reservation.unit_price_cents,
            "total_cents": reservation.unit_price_cents * reservation.quantity,
            "currency": reservation.currency,
            "status": "pending",
            "order_ref": reservation.order_ref,
            "idempotency_key": idempotency_key,
            "created_at": now,
            "updated_at": now,
        }
        order = Order(id=inserted_id(session, _PLACE, values), **values)
        event = OrderCreated(
            order_id=order.id,
            user_id=user_id,
            product_id=order.product_id,
            quantity=order.quantity,
            total_cents=order.total_cents,
            currency=order.currency,
            occurred_at=now,
        )
        events.add(session, event)
    return order


def _key_used(sessions: sessionmaker, user_id: int, key: str) -> bool:
    with sessions() as session:
        return session.scalar(_BY_KEY, {"user_id": user_id, "key": key}) is not None


def _placed(
    sessions: sessionmaker, user_id: int, key: str | None, request: OrderCreate
) -> Order | None:
    """The order this user already placed with this Idempotency-Key, if any."""
    with sessions() as session:
        return _placed_in(session, user_id, key, request)


def _placed_in(
    session: Session, user_id: int, key: str | None, request: OrderCreate
) -> Order | None:
    if key is None:
        return None
    order = session.scalar(_BY_KEY, {"user_id": user_id, "key": key})
    if order is not None and (order.product_id, order.quantity) != (
        request.product_id,
        request.quantity,
    ):
        raise Conflict("this Idempotency-Key was used for a different order")
    return order


def _cap_reached(max_pending: int) -> Conflict:
    return Conflict(
        f"you have {max_pending} orders awaiting payment, the most allowed: "
        "pay or cancel one before ordering again"
    )


def _free_slot(session: Session, user_id: int, max_pending: int) -> int:
    """The lowest of the user's ``max_pending`` pending-order slots no pending order holds.

    Each pending order holds a slot, unique per user (NULL once it leaves pending), so the
    database itself refuses a second order in the same slot when two are placed at once.
    """
    held = set(session.scalars(_SLOTS_HELD, {"user_id": user_id}))
    free = next((slot for slot in range(max_pending) if slot not in held), None)
    if free is None:
        raise _cap_reached(max_pending)
    return free


def _placed_or_room(
    sessions: sessionmaker, user_id: int, key: str | None, request: OrderCreate, max_pending: int
) -> Order | None:
    """The order placed with this key before; else None, or a Conflict before any stock is
    taken if the user has no pending-order slot free. One session for both questions."""
    with sessions() as session:
        placed = _placed_in(session, user_id, key, request)
        if placed is None and max_pending:
            _free_slot(session, user_id, max_pending)
        return placed


def _store_in_a_slot(
    sessions: sessionmaker,
    events: EventSink,
    user_id: int,
    reservation: Reservation,
    key: str | None,
    max_pending: int,
) -> Order:
    """Store the order in a free slot; a slot a concurrent order took first is tried again."""
    for _ in range(SLOT_ATTEMPTS - 1):
        try:
            return _store(sessions, events, user_id, reservation, key, max_pending)
        except IntegrityError:
            if key is not None and _key_used(sessions, user_id, key):
                raise  # a concurrent retry with the same key stored its order first
    try:
        return _store(sessions, events, user_id, reservation, key, max_pending)
    except IntegrityError:
        if key is not None and _key_used(sessions, user_id, key):
            raise
        raise Conflict("too many orders placed at once; try again") from None


def create_order(
    sessions: sessionmaker,
    events: EventSink,
    catalog: Catalog,
    user_id: int,
    request: OrderCreate,
    key: str | None = None,
    *,
    max_pending: int = DEFAULT_MAX_PENDING,
) -> OrderOut:
    """Reserve the stock, then store the order; if that fails, the stock goes back.

    ``user_id`` is trusted: the caller (the gateway) took it from a verified token, so no
    round trip to users asks again. With a ``key`` (the client's Idempotency-Key), a retry
    returns the order the first attempt placed.
    A user with ``max_pending`` orders awaiting payment gets a Conflict: checked before any
    stock is taken, and held by the database when orders are placed at once (pending slots).
    ``max_pending`` 0 is no cap: no slot is taken.
    """
    if (placed := _placed_or_room(sessions, user_id, key, request, max_pending)) is not None:
        return to_out(placed)
    order_ref = uuid.uuid4().hex
    reservation = _reserve(catalog, request, order_ref)
    try:
        order = _store_in_a_slot(sessions, events, user_id, reservation, key, max_pending)
    except IntegrityError:
        _release(catalog, order_ref)
        # A concurrent retry with the same key stored its order first.
        if (placed := _placed(sessions, user_id, key, request)) is None:
            raise
        return to_out(placed)
    except Exception:
        _release(catalog, order_ref)
        raise
    log.info("order created", extra={"order_id": order.id, "user_id": user_id})
    return to_out(order)


# ---------------------------------------------------------------- read


def list_orders(sessions: sessionmaker, user_id: int, request: OrderQuery) -> OrderPage:
    """A page of the user's orders, newest first."""
    with sessions() as session:
        orders = session.scalars(
            select(Order)
            .where(Order.user_id == user_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(request.limit)
            .offset(request.offset)
        ).all()
    return OrderPage(items=[to_out(o) for o in orders], limit=request.limit, offset=request.offset)


def _visible(session: Session, order_id: int, owner: int | None, *, lock: bool = False) -> Order:
    """The order if ``owner`` is None (an admin) or owns it; otherwise NotFound, as if missing."""
    order = session.get(Order, order_id, with_for_update=lock) if is_id(order_id) else None
    if order is None or (owner is not None and order.user_id != owner):
        raise NotFound(ORDER_NOT_FOUND)
    return order


def _owner(viewer: Viewer) -> int | None:
    """Whose orders the viewer may see: None for an administrator."""
    return None if viewer.is_admin else viewer.user_id


def get_order(sessions: sessionmaker, order_id: int, viewer: Viewer) -> OrderOut:
    with sessions() as session:
        return to_out(_visible(session, order_id, _owner(viewer)))


def order_ref_states(sessions: sessionmaker, request: OrderRefs) -> list[OrderRefState]:
    """The status of the stored order holding each of these reservation refs (unknown ones
    are left out)."""
    if not request.refs:
        return []
    with sessions() as session:
        rows = session.execute(
            select(Order.order_ref, Order.status)
            .where(Order.order_ref.in_(request.refs))
            .order_by(Order.id)
        ).all()
    return [OrderRefState(order_ref=ref, status=status) for ref, status in rows]


# ---------------------------------------------------------------- status


def _apply(
    sessions: sessionmaker,
    events: EventSink,
    order_id: int,
    new: str,
    owner: int | None,
    expect: str | None = None,
) -> Order:
    """Move the order to ``new`` and store order.status_changed, in one transaction.

    FOR UPDATE makes a concurrent transition wait on PostgreSQL and MariaDB; the
    conditional UPDATE catches the same race on SQLite, which ignores FOR UPDATE.
    With ``expect``, only an order still in that status moves (Conflict otherwise).
    """
    with sessions() as session, session.begin():
        order = _visible(session, order_id, owner, lock=True)
        old = order.status
        if expect is not None and old != expect:
            raise Conflict(f"the order is {old}, no longer {expect}")
        if new not in TRANSITIONS[old]:
            raise Conflict(f"an order that is {old} cannot become {new}")
        now = utcnow()
        moved = affected(
            session,
            update(Order)
            .where(Order.id == order.id, Order.status == old)
            .values(status=new, updated_at=now, pending_slot=None)  # pending no more
            .execution_options(synchronize_session=False),
        )
        if moved != 1:
            raise Conflict("the order changed meanwhile; try again")
        session.refresh(order)
        event = OrderStatusChanged(
            order_id=order.id,
            user_id=order.user_id,
            order_ref=order.order_ref,
            old_status=old,
            new_status=new,
            occurred_at=now,
        )
        events.add(session, event)
    return order


def _change(
    sessions: sessionmaker,
    events: EventSink,
    catalog: Catalog,
    order_id: int,
    new: str,
    owner: int | None,
    expect: str | None = None,
) -> OrderOut:
    # The status change and its event commit first; the stock is released after.
    # Releasing first would hold the order's lock across an RPC (on SQLite, its one
    # write lock), and a failed commit would leave stock released for a live order.
    # The release here is for read-your-writes; the guarantee is the catalog's handler
    # of order.status_changed, which releases the reservation (idempotently) from the
    # outbox event even when this call fails.
    order = _apply(sessions, events, order_id, new, owner, expect)
    if new == "cancelled":
        _release(catalog, order.order_ref)
    log.info("order status changed", extra={"order_id": order.id, "status": new})
    return to_out(order)


def cancel_order(
    sessions: sessionmaker,
    events: EventSink,
    catalog: Catalog,
    order_id: int,
    viewer: Viewer,
) -> OrderOut:
    """Cancel an order its owner (or an admin) can see; its stock goes back to the catalog."""
    return _change(sessions, events, catalog, order_id, "cancelled", _owner(viewer))


def set_status(
    sessions: sessionmaker, events: EventSink, catalog: Catalog, order_id: int, change: StatusChange
) -> OrderOut:
    """The admin path: any legal transition; the gateway checks the caller is an admin."""
    return _change(sessions, events, catalog, order_id, change.status, None)


# ---------------------------------------------------------------- expiry


def expired_pending(
    sessions: sessionmaker, older_than: datetime, limit: int = EXPIRY_BATCH
) -> list[int]:
    """Ids of orders still pending that were placed before ``older_than``, oldest first."""
    with sessions() as session:
        return list(
            session.scalars(
                select(Order.id)
                .where(Order.status == "pending", Order.created_at < older_than)
                .order_by(Order.id)
                .limit(limit)
            )
        )


def expire_order(
    sessions: sessionmaker, events: EventSink, catalog: Catalog, order_id: int
) -> bool:
    """Cancel the order if it is still pending (its stock goes back); False if it moved on."""
    try:
        _change(sessions, events, catalog, order_id, "cancelled", None, expect="pending")
    except Conflict:
        return False  # paid or cancelled meanwhile, or another process expired it first
    log.info("pending order expired", extra={"order_id": order_id})
    return True


def expire_pending(
    sessions: sessionmaker, events: EventSink, catalog: Catalog, older_than: datetime
) -> int:
    """Cancel one batch of orders left pending since before ``older_than``; how many."""
    ids = expired_pending(sessions, older_than)
    return sum(expire_order(sessions, events, catalog, order_id) for order_id in ids)
