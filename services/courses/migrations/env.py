"""alembic environment of the courses service (see mesh/migrations.py)."""

from mesh.migrations import run_env
from services.courses.models import Base

run_env(Base.metadata)
