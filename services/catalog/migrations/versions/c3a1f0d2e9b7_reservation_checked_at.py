"""reservation checked_at

Revision ID: c3a1f0d2e9b7
Revises: 0001
Create Date: 2026-11-22 23:40:00.000000

``confirmed_at`` meant "orders holds the order"; it now means "the order can no longer be
cancelled". Rows confirmed before are moved to ``checked_at``, so that settling asks again
and releases the stock of those whose order was cancelled since.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3a1f0d2e9b7"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE reservations SET checked_at = confirmed_at, confirmed_at = NULL "
        "WHERE confirmed_at IS NOT NULL AND released_at IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("reservations", schema=None) as batch_op:
        batch_op.drop_column("checked_at")
