"""One typed settings object, read from the environment."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mesh import faults

DEV_JWT_SECRET = "dev-only-insecure-jwt-secret-change-me-0000"  # noqa: S105 (refused outside dev)


class Settings(BaseSettings):
    """Every knob of the mesh; each field is read from the env var of the same name."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    mesh_env: Literal["development", "production"] = "development"
    mesh_var_dir: Path = Path("var")
    log_level: str = "INFO"
    mesh_faults: str | None = None  # fault injection for crash tests (mesh.faults)
    # OpenTelemetry spans over OTLP/HTTP (mesh.tracing; README, "Tracing"); off: no cost.
    tracing_enabled: bool = False
    otel_exporter_otlp_endpoint: str = "http://127.0.0.1:4318"  # /v1/traces is appended
    tracing_sample_ratio: float = Field(1.0, ge=0, le=1)  # of new traces; children follow

    amqp_uri: str = "amqp://guest:guest@127.0.0.1:5672/"
    redis_url: str = "redis://127.0.0.1:6379/0"
    mongo_url: str | None = None
    mongo_embedded_port: int = 27027
    mongo_db: str = "mesh"
    users_database_url: str | None = None
    catalog_database_url: str | None = None
    orders_database_url: str | None = None
    courses_database_url: str | None = None
    analytics_database_url: str | None = None

    smtp_url: str | None = None
    # CA bundle that signs the SMTP server's certificate; unset: the system's trusted CAs.
    smtp_ca_file: Path | None = None
    mail_from: str = "mesh <no-reply@mesh.localhost>"
    # then the e-mail waits in email.XQ; unset: as many as EMAIL_RETRY_BUDGET_SECONDS needs
    email_max_retries: int | None = Field(None, ge=0)
    email_retry_min_ms: int = Field(1000, ge=10)
    email_retry_max_ms: int = Field(300_000, ge=10)

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_access_ttl: int = Field(900, ge=60)
    jwt_refresh_ttl: int = Field(14 * 24 * 3600, ge=300)

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    gateway_workers: int = Field(2, ge=1)
    gateway_threads: int = Field(24, ge=2)
    rpc_timeout: float = Field(5.0, gt=0)
    rpc_pool_size: int = Field(16, ge=1)
    # Starvation guards of the gateway (README, "One client cannot starve the gateway"):
    # SSE streams per user (over every worker) and per worker, RPC calls in flight per
    # service per worker, and the breaker that fails fast after calls got no answer.
    sse_max_per_user: int = Field(3, ge=1)
    sse_max_total: int = Field(6, ge=1)
    rpc_max_in_flight: int = Field(6, ge=1)
    rpc_slot_wait_seconds: float = Field(2.0, ge=0)
    rpc_breaker_failures: int = Field(5, ge=1)
    rpc_breaker_reset_seconds: float = Field(5.0, gt=0)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    upload_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    login_rate_ip: str = "20/minute"
    login_rate_account: str = "5/minute"  # per account and client address together
    login_rate_account_total: str = "50/hour"  # per account, whatever the address
    register_rate_ip: str = "10/minute"
    api_rate_ip: str = "600/minute"
    # Proxies in front of the gateway that set X-Forwarded-For/-Proto/-Host (0: none, the
    # headers are ignored and limits key on the connecting address).
    trusted_proxies: int = Field(0, ge=0, le=10)
    # Comma-separated origins a browser may call the API from (https://app.example.com);
    # empty: none (same-origin only). Checked by _cors_origins_are_origins.
    cors_origins: str = ""

    # An event handler's failure: transient ones (a server down) retry for the budget,
    # unknown ones (a bug?) for event_max_attempts, permanent ones dead-letter at once.
    event_max_attempts: int = Field(5, ge=1)
    event_retry_base_ms: int = Field(1000, ge=10)
    event_retry_max_ms: int = Field(60_000, ge=10)
    event_retry_budget_seconds: float = Field(6 * 3600, gt=0)
    # The e-mail actor (Dramatiq): the same rule, as many retries as fill the budget.
    email_retry_budget_seconds: float = Field(6 * 3600, gt=0)
    outbox_poll_seconds: float = Field(1.0, gt=0)
    outbox_retention_hours: float = Field(24.0, gt=0)
    outbox_prune_batch: int = Field(500, ge=1)
    outbox_stuck_log_seconds: float = Field(60.0, gt=0)
    # Where a process without a gateway beside it (one per container) serves its metrics
    # files; unset: none does (the gateway's /metrics shows them). mesh.metrics.
    metrics_port: int | None = Field(None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    reservation_grace_seconds: int = Field(600, ge=60)
    order_pending_ttl_seconds: int = Field(1800, ge=60)  # an unpaid order is cancelled after it
    # More unpaid orders than this: 409. 0: no cap (the benchmarks, which leave orders unpaid).
    order_max_pending_per_user: int = Field(10, ge=0)

    # The content pipeline: an OpenAI-compatible embedder when EMBEDDINGS_BASE_URL or
    # OPENAI_API_KEY is set, else the local all-MiniLM-L6-v2 (see mesh.embedding).
    embeddings_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    embeddings_model: str = "text-embedding-3-small"
    embeddings_dimension: int | None = Field(None, ge=1)
    embeddings_batch_size: int = Field(32, ge=1)
    embeddings_timeout: float = Field(30.0, gt=0)
    embeddings_max_retries: int = Field(2, ge=0)
    embeddings_threads: int | None = Field(None, ge=1)
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = "course_chunks"

    # The course assistant: a chat model through OPENAI_BASE_URL (any OpenAI-compatible
    # server) when it or OPENAI_API_KEY is set, else extractive answers quoting the course.
    assistant_model: str = "gpt-4o-mini"
    assistant_timeout: float = Field(20.0, gt=0)  # the model's connect and between-token wait
    assistant_max_seconds: float = Field(90.0, gt=0)  # one whole answer, tokens included
    assistant_max_tokens: int = Field(800, ge=16)
    assistant_history_turns: int = Field(3, ge=0, le=20)
    # all-MiniLM-L6-v2 cosine of the question to the closest passage: below it, "not found".
    assistant_min_similarity: float = Field(0.30, ge=-1.0, le=1.0)

    @field_validator(
        "mongo_url",
        "smtp_url",
        "users_database_url",
        "catalog_database_url",
        "orders_database_url",
        "courses_database_url",
        "analytics_database_url",
        "embeddings_base_url",
        "openai_api_key",
        "openai_base_url",
        "qdrant_url",
        "qdrant_api_key",
        "embeddings_dimension",
        "embeddings_threads",
        "email_max_retries",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cors_origins")
    @classmethod
    def _cors_origins_are_origins(cls, value: str) -> str:
        for origin in (part.strip() for part in value.split(",")):
            if origin and not re.fullmatch(r"https?://[^/\s,]+", origin):
                raise ValueError(f"CORS_ORIGINS: {origin!r} is not scheme://host[:port]")
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        """CORS_ORIGINS as a list (empty: no cross-origin caller is allowed)."""
        return [part.strip() for part in self.cors_origins.split(",") if part.strip()]

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        secret = self.jwt_secret.get_secret_value()
        weak = secret == DEV_JWT_SECRET or len(secret) < 32
        # Development may keep the public default only while the gateway is unreachable
        # from other machines: anyone could forge an admin token with it.
        if weak and (self.mesh_env != "development" or not self._gateway_is_local()):
            raise ValueError(
                "JWT_SECRET must be set to a random value of 32+ characters when MESH_ENV "
                "is not 'development' or the gateway listens beyond this machine"
            )
        return self

    @model_validator(mode="after")
    def _faults_only_in_tests(self) -> Settings:
        if self.mesh_faults and self.mesh_faults.strip():
            if self.mesh_env == "production":
                raise ValueError("MESH_FAULTS (fault injection) is refused in production")
            faults.parse(self.mesh_faults)
        return self

    @model_validator(mode="after")
    def _refuse_embedded_mongo_in_production(self) -> Settings:
        # The embedded server is a development convenience: no replication, no backups.
        if self.mesh_env == "production" and self.mongo_url is None:
            raise ValueError("MONGO_URL must be set when MESH_ENV is 'production'")
        return self

    @model_validator(mode="after")
    def _grace_outlasts_rpc(self) -> Settings:
        # Settling a reservation must never race an order that is still being placed.
        if self.reservation_grace_seconds < 4 * self.rpc_timeout:
            raise ValueError("RESERVATION_GRACE_SECONDS must be at least 4 x RPC_TIMEOUT")
        return self

    @model_validator(mode="after")
    def _streams_leave_threads(self) -> Settings:
        # An SSE stream holds a gateway thread while open: REST must keep some.
        if self.sse_max_total >= self.gateway_threads:
            raise ValueError("SSE_MAX_TOTAL must be below GATEWAY_THREADS")
        return self

    def _gateway_is_local(self) -> bool:
        try:
            return ipaddress.ip_address(self.gateway_host).is_loopback
        except ValueError:
            return self.gateway_host == "localhost"

    @property
    def mongo_uri(self) -> str:
        """The configured MongoDB, or the embedded nx-27017 server."""
        return self.mongo_url or f"mongodb://127.0.0.1:{self.mongo_embedded_port}/"

    @property
    def uploads_path(self) -> Path:
        """Where uploaded lesson files live, each under its SHA-256."""
        return self.mesh_var_dir.resolve() / "uploads"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def embedded_mongo(self) -> bool:
        return self.mongo_url is None

    @property
    def qdrant_path(self) -> Path:
        """Where local-mode Qdrant keeps its data when QDRANT_URL is unset."""
        return self.mesh_var_dir / "qdrant"

    def sql_url(self, service: str) -> str:
        """The SQLAlchemy URL of one service's own database (SQLite under var/ by default)."""
        configured: str | None = getattr(self, f"{service}_database_url", None)
        if configured:
            return configured
        return f"sqlite:///{(self.mesh_var_dir / f'{service}.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
