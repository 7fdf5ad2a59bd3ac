"""pending slot

Revision ID: d4e8a1c7b2f9
Revises: b2c74b322f2c
Create Date: 2026-11-23 00:05:00.000000

Each pending order holds one of its user's ORDER_MAX_PENDING_PER_USER slots, unique per user,
so that orders placed at once cannot pass the cap. Orders pending before get slots 0, 1, ...
per user, oldest first (a user above today's cap keeps them, and orders again once below).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d4e8a1c7b2f9"
down_revision: str | None = "b2c74b322f2c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_slot", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(
            "uq_orders_user_pending_slot", ["user_id", "pending_slot"]
        )
    orders = sa.table(
        "orders",
        sa.column("id", sa.Integer),
        sa.column("user_id", sa.Integer),
        sa.column("status", sa.String),
        sa.column("pending_slot", sa.Integer),
    )
    bind = op.get_bind()
    pending = bind.execute(
        sa.select(orders.c.id, orders.c.user_id)
        .where(orders.c.status == "pending")
        .order_by(orders.c.id)
    ).all()
    slots: Counter[int] = Counter()
    for order_id, user_id in pending:
        bind.execute(
            sa.update(orders).where(orders.c.id == order_id).values(pending_slot=slots[user_id])
        )
        slots[user_id] += 1


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint("uq_orders_user_pending_slot", type_="unique")
        batch_op.drop_column("pending_slot")
