"""alembic environment of the users service (see mesh/migrations.py)."""

from mesh.migrations import run_env
from services.users.models import Base

run_env(Base.metadata)
