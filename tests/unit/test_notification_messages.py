from __future__ import annotations

import pytest

from contracts.catalog import FieldChange, ProductUpdated
from contracts.orders import OrderStatusChanged
from services.notifications import messages

USER = {"id": 3, "email": "kim@example.com", "name": "Kim"}


def changed(change: str = "updated", **fields: tuple[object, object]) -> ProductUpdated:
    return ProductUpdated(
        product_id=1,
        change=change,  # type: ignore[arg-type]
        changes={k: FieldChange(old=o, new=n) for k, (o, n) in fields.items()},
    )


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (changed(price_cents=(2000, 1500)), "price_drop"),
        (changed(price_cents=(1500, 2000)), None),
        (changed(stock=(0, 5)), "back_in_stock"),
        (changed(stock=(5, 4)), None),
        (changed(stock=(0, 0)), None),
        (changed(name=("a", "b")), None),
        (changed("created", price_cents=(None, 100)), None),
        (changed("deleted"), None),
    ],
)
def test_wishlisters_hear_of_price_drops_and_restocks_only(
    event: ProductUpdated, reason: str | None
) -> None:
    assert messages.wishlist_reason(event) == reason


def test_status_change_message_names_the_order_and_both_statuses() -> None:
    event = OrderStatusChanged(
        order_id=8, user_id=3, order_ref="ref-8", old_status="paid", new_status="shipped"
    )
    doc = messages.order_status(event, USER)
    assert doc["orderId"] == 8 and doc["userId"] == 3
    assert "paid" in doc["body"] and "shipped" in doc["title"]
    assert doc["email"]["to"] == "kim@example.com"
