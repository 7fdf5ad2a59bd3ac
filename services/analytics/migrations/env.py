"""alembic environment of the analytics service (see mesh/migrations.py)."""

from mesh.migrations import run_env
from services.analytics.models import Base

run_env(Base.metadata)
