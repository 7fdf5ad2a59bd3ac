"""``python -m mesh.migrations upgrade``: the one-shot job of compose/stack.yaml brings every
SQL service's configured database to the newest schema before any service starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from mesh.migrations import config, sql_services

ROOT = Path(__file__).resolve().parents[2]


def current_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def test_every_service_with_migrations_has_a_database_setting() -> None:
    with_migrations = {folder.parent.name for folder in (ROOT / "services").glob("*/migrations")}
    assert set(sql_services()) == with_migrations


def test_upgrade_migrates_every_configured_database_to_head(tmp_path: Path) -> None:
    urls = {service: f"sqlite:///{tmp_path / service}.db" for service in sql_services()}
    env = {**os.environ, **{f"{name.upper()}_DATABASE_URL": url for name, url in urls.items()}}
    command = [sys.executable, "-m", "mesh.migrations", "upgrade"]
    for _ in range(2):  # a second run, as on every `docker compose up`, finds nothing to do
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    for service, url in urls.items():
        head = ScriptDirectory.from_config(config(service, url)).get_current_head()
        assert head is not None
        assert current_revision(url) == head, service
