from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.catalog import FieldChange, ProductOut, ProductUpdated
from contracts.orders import OrderStatusChanged
from contracts.users import UserOut
from services.notifications import messages

STAMP = datetime(2026, 1, 2, tzinfo=UTC)
USER = UserOut(id=3, email="kim@example.com", name="Kim", created_at=STAMP)


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


def test_a_price_drop_alert_names_the_product_and_its_new_price() -> None:
    lamp = ProductOut(
        id=1,
        name="Lamp",
        description="",
        price_cents=1500,
        currency="EUR",
        stock=2,
        created_at=STAMP,
        updated_at=STAMP,
    )
    doc = messages.wishlist_alert(changed(price_cents=(2000, 1500)), lamp, USER, "price_drop")
    assert doc["title"] == "Lamp is now 15.00 EUR" and doc["productId"] == 1
    assert doc["email"]["text"].startswith("Hello Kim,")
