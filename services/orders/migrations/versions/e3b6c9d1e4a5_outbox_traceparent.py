"""outbox traceparent

Revision ID: e3b6c9d1e4a5
Revises: d4e8a1c7b2f9
Create Date: 2026-12-01 10:00:00.000000

An outbox row keeps the W3C traceparent of the transaction that stored it (mesh.tracing), so
that the event's handlers continue that trace after the relay publishes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e3b6c9d1e4a5"
down_revision: str | None = "d4e8a1c7b2f9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("traceparent", sa.String(length=55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("traceparent")
