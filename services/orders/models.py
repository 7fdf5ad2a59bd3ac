"""The orders service's own tables."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from mesh.outbox import outbox_table


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Order(Base):
    """One order of one product; user and product live in other services, so no foreign keys."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_user_created", "user_id", "created_at"),
        Index("ix_orders_status", "status"),
        UniqueConstraint("user_id", "idempotency_key", name="uq_orders_user_idempotency_key"),
        UniqueConstraint("user_id", "pending_slot", name="uq_orders_user_pending_slot"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer, nullable=False)
    product_id: Mapped[int] = mapped_column(Integer, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    unit_price_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    # 100 items at the 1,000,000.00 price cap overflow a 32-bit integer.
    total_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    order_ref: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    # The client's Idempotency-Key: a retried POST returns the order it already placed.
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    # Which of its user's ORDER_MAX_PENDING_PER_USER slots a pending order holds; NULL after.
    pending_slot: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )


outbox = outbox_table(Base.metadata)
