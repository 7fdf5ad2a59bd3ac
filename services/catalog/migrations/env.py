"""alembic environment of the catalog service (see mesh/migrations.py)."""

from mesh.migrations import run_env
from services.catalog.models import Base

run_env(Base.metadata)
