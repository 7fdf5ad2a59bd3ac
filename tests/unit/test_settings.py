from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mesh.settings import DEV_JWT_SECRET, Settings


def test_development_accepts_the_default_secret() -> None:
    assert Settings(mesh_env="development").jwt_secret.get_secret_value() == DEV_JWT_SECRET


@pytest.mark.parametrize("secret", [DEV_JWT_SECRET, "too-short"])
def test_production_refuses_a_default_or_weak_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(mesh_env="production", jwt_secret=secret)


def test_production_takes_a_real_secret() -> None:
    settings = Settings(
        mesh_env="production", jwt_secret="s" * 40, mongo_url="mongodb://db.internal:27017/"
    )
    assert settings.mesh_env == "production"


@pytest.mark.parametrize("mongo_url", [None, "", "  "])
def test_production_refuses_the_embedded_mongodb(
    mongo_url: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MONGO_URL", raising=False)
    with pytest.raises(ValidationError, match="MONGO_URL"):
        Settings(mesh_env="production", jwt_secret="s" * 40, mongo_url=mongo_url)
    assert Settings(mesh_env="development", mongo_url=mongo_url).embedded_mongo


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URI", "amqp://u:p@rabbit:5672/v")
    monkeypatch.setenv("MONGO_URL", "mongodb://mongo:27017/")
    settings = Settings()
    assert settings.amqp_uri == "amqp://u:p@rabbit:5672/v"
    assert settings.mongo_uri == "mongodb://mongo:27017/"
    assert not settings.embedded_mongo


def test_defaults_are_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONGO_URL", raising=False)
    monkeypatch.delenv("MONGO_EMBEDDED_PORT", raising=False)
    settings = Settings(mesh_var_dir=tmp_path)
    assert settings.embedded_mongo
    assert settings.mongo_uri == "mongodb://127.0.0.1:27027/"
    assert settings.sql_url("users") == f"sqlite:///{tmp_path.resolve() / 'users.db'}"


def test_empty_urls_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGO_URL", "")
    monkeypatch.setenv("SMTP_URL", " ")
    settings = Settings()
    assert settings.embedded_mongo and settings.smtp_url is None


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "mesh.example.com"])
def test_development_refuses_the_default_secret_beyond_loopback(host: str) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(mesh_env="development", gateway_host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_development_keeps_the_default_secret_on_loopback(host: str) -> None:
    assert Settings(mesh_env="development", gateway_host=host).gateway_host == host


def test_reservation_grace_must_outlast_rpc_timeouts() -> None:
    with pytest.raises(ValidationError, match="RESERVATION_GRACE_SECONDS"):
        Settings(rpc_timeout=30, reservation_grace_seconds=60)
