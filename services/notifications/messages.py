"""The notification each domain event produces: plain functions from event to document."""

from __future__ import annotations

import unicodedata
from typing import Any

from contracts.base import NOT_ON_ONE_LINE
from contracts.catalog import CatalogApi, ProductOut, ProductUpdated
from contracts.courses import CourseOut, CoursePublished, EnrollmentCreated
from contracts.errors import NotFound
from contracts.orders import OrderCreated, OrderStatusChanged
from contracts.users import UserRegistered, UsersApi
from services.notifications import fanout, recipients
from services.notifications.logic import Outlets, compose, record
from services.notifications.recipients import Addressee


def one_line(text: str) -> str:
    """``text`` on one line, each run of white space or control characters one space: a title
    is an e-mail's Subject, which cannot hold a line break (names stored before the contracts
    refused them may have one)."""
    spaced = "".join(" " if unicodedata.category(ch) in NOT_ON_ONE_LINE else ch for ch in text)
    return " ".join(spaced.split())


def welcome(event: UserRegistered, user: Addressee) -> dict[str, Any]:
    # No address in the body: it is shown by the API and streamed (the e-mail goes to it anyway).
    return compose(event, user, "Welcome to the mesh", f"Your account, {user.name}, is ready.")


def order_placed(event: OrderCreated, user: Addressee) -> dict[str, Any]:
    body = f"We have your order #{event.order_id} for {event.quantity} item(s)."
    return compose(event, user, f"Order #{event.order_id} placed", body, orderId=event.order_id)


def order_status(event: OrderStatusChanged, user: Addressee) -> dict[str, Any]:
    title = f"Order #{event.order_id} is {event.new_status}"
    body = f"Your order #{event.order_id} went from {event.old_status} to {event.new_status}."
    return compose(event, user, title, body, orderId=event.order_id)


def course_welcome(event: EnrollmentCreated, course: CourseOut, user: Addressee) -> dict[str, Any]:
    title = one_line(f"Welcome to {course.title}")
    body = f"You are enrolled in {course.title}. Your progress starts at 0 %: enjoy the course."
    return compose(event, user, title, body, courseId=course.id)


def course_published(event: CoursePublished, course: CourseOut, user: Addressee) -> dict[str, Any]:
    title = one_line(f"{course.title} is published")
    body = f"Your course {course.title} is live: {event.chunks} passages are searchable."
    return compose(event, user, title, body, courseId=course.id)


def wishlist_reason(event: ProductUpdated) -> str | None:
    """Why wishlisters hear of this change: a price drop or a return to stock, else None."""
    if event.change != "updated":
        return None
    price, stock = event.changes.get("price_cents"), event.changes.get("stock")
    if price is not None and _below(price.new, price.old):
        return "price_drop"
    if stock is not None and stock.old == 0 and _below(0, stock.new):
        return "back_in_stock"
    return None


def _below(a: Any, b: Any) -> bool:
    return isinstance(a, int) and isinstance(b, int) and a < b


def wishlist_alert(
    event: ProductUpdated, product: ProductOut, user: Addressee, reason: str
) -> dict[str, Any]:
    name = one_line(product.name)
    if reason == "price_drop":
        price = f"{product.price_cents / 100:.2f} {product.currency}"
        title, body = f"{name} is now {price}", f"A product on your wishlist got cheaper: {name}."
    else:
        title, body = f"{name} is back in stock", f"A product on your wishlist is back: {name}."
    return compose(event, user, title, body, productId=event.product_id, reason=reason)


def notify_wishlisters(
    db: Any, outlets: Outlets, catalog: CatalogApi, users: UsersApi, event: ProductUpdated
) -> int:
    """Tell everyone who wishlisted the product about a price drop or restock, a batch at a
    time (resumed where a failure left it: :mod:`services.notifications.fanout`); return how
    many wishlisters this delivery covered."""
    reason = wishlist_reason(event)
    if reason is None:
        return 0
    try:
        product = catalog.get_product(event.product_id)
    except NotFound:
        return 0  # deleted since: nothing to buy

    def page(after: int, limit: int) -> list[int]:
        return catalog.wishlisted_by(event.product_id, after, limit)

    def tell(user_ids: list[int]) -> None:
        # From the read model; the misses in one call per batch; deleted users left out.
        for user in recipients.recipients(db, users, user_ids):
            record(db, outlets, event, wishlist_alert(event, product, user, reason))

    return fanout.fan_out(db, event, page, tell)
