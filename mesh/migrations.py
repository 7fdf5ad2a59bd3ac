"""Schema migrations with alembic: each SQL service keeps its own in services/<name>/migrations.

A service brings its database to the newest revision when it starts (``upgrade``). To write a
migration after changing a service's models::

    .venv/bin/python -m mesh.migrations revision users "add a column"

which compares the models with a scratch database at the newest revision and autogenerates
``services/users/migrations/versions/<rev>_<slug>.py`` for review.
"""

from __future__ import annotations

import sys
import tempfile

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine


def config(service: str, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", f"services.{service}:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(service: str, url: str) -> None:
    """Bring ``service``'s database at ``url`` to the newest schema."""
    command.upgrade(config(service, url), "head")


def run_env(metadata: MetaData) -> None:
    """The body of every service's ``env.py``: migrate online, in one transaction."""
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as connection:
            # Batch mode lets SQLite, which cannot ALTER most things, rebuild a table instead.
            context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "revision":
        print("usage: python -m mesh.migrations revision SERVICE MESSAGE", file=sys.stderr)
        return 2
    _, service, message = argv
    # Compare the models with a scratch database at head, never with a live one.
    with tempfile.TemporaryDirectory() as folder:
        cfg = config(service, f"sqlite:///{folder}/draft.db")
        command.upgrade(cfg, "head")
        command.revision(cfg, message=message, autogenerate=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
