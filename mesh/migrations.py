"""Schema migrations with alembic: each SQL service keeps its own in services/<name>/migrations.

A service brings its database to the newest revision when it starts (``upgrade``). To write a
migration after changing a service's models::

    .venv/bin/python -m mesh.migrations revision users "add a column"

which compares the models with a scratch database at the newest revision and autogenerates
``services/users/migrations/versions/<rev>_<slug>.py`` for review. To migrate every SQL
service's configured database at once (a deployment's one-shot job, before the services
start)::

    .venv/bin/python -m mesh.migrations upgrade
"""

from __future__ import annotations

import sys
import tempfile

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine

from mesh.settings import Settings, get_settings


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


def sql_services() -> list[str]:
    """Every service with a database of its own: one ``<service>_database_url`` setting each."""
    suffix = "_database_url"
    return [name.removesuffix(suffix) for name in Settings.model_fields if name.endswith(suffix)]


def upgrade_all() -> None:
    """Bring every SQL service's configured database to the newest schema."""
    settings = get_settings()
    for service in sql_services():
        upgrade(service, settings.sql_url(service))
        print(f"{service}: at the newest schema")


USAGE = "usage: python -m mesh.migrations revision SERVICE MESSAGE | upgrade"


def main(argv: list[str]) -> int:
    if argv == ["upgrade"]:
        upgrade_all()
        return 0
    if len(argv) != 3 or argv[0] != "revision":
        print(USAGE, file=sys.stderr)
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
