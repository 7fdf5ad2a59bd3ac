"""alembic environment of the orders service (see mesh/migrations.py)."""

from mesh.migrations import run_env
from services.orders.models import Base

run_env(Base.metadata)
