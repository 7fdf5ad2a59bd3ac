"""The composition root: ``create_app`` builds the gateway from Settings and its adapters."""

from __future__ import annotations

import atexit
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flask import Flask
from redis import Redis

from gateway.auth import init_jwt
from gateway.cors import init_cors
from gateway.deps import Deps, Services, install
from gateway.errors import register_error_handlers
from gateway.http import ConversationIdConverter, IdConverter, JobIdConverter, trust_proxies
from gateway.limits import apply_limits, init_limiter
from gateway.metrics import init_dead_letters, init_metrics
from gateway.middleware import init_middleware
from gateway.routes import (
    assistant,
    auth,
    courses,
    dashboard,
    docs,
    events,
    health,
    learning,
    notifications,
    orders,
    products,
    reports,
    users,
    wishlist,
)
from gateway.rpc_pool import RpcClient, RpcPool
from mesh import tracing
from mesh.logging import configure_logging
from mesh.settings import Settings, get_settings

BLUEPRINTS = (
    auth.bp,
    users.bp,
    products.bp,
    wishlist.bp,
    orders.bp,
    courses.bp,
    learning.bp,
    assistant.bp,
    reports.bp,
    notifications.bp,
    events.bp,
    health.bp,
    docs.bp,
    dashboard.bp,
)


def settings_config(settings: Settings) -> dict[str, Any]:
    """Flask config derived from Settings; ``test_config`` may override any key."""
    return {
        "JWT_SECRET_KEY": settings.jwt_secret.get_secret_value(),
        "JWT_ALGORITHM": "HS256",
        "JWT_DECODE_ALGORITHMS": ["HS256"],
        "JWT_TOKEN_LOCATION": ["headers"],
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(seconds=settings.jwt_access_ttl),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(seconds=settings.jwt_refresh_ttl),
        "MAX_CONTENT_LENGTH": settings.max_body_bytes,
        "UPLOAD_MAX_BYTES": settings.upload_max_bytes,
        "UPLOADS_PATH": str(settings.uploads_path),
        "RATELIMIT_STORAGE_URI": settings.redis_url,
        "RATELIMIT_STORAGE_OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        "RATELIMIT_STRATEGY": "sliding-window-counter",
        "LOGIN_RATE_IP": settings.login_rate_ip,
        "LOGIN_RATE_ACCOUNT": settings.login_rate_account,
        "LOGIN_RATE_ACCOUNT_TOTAL": settings.login_rate_account_total,
        "TRUSTED_PROXIES": settings.trusted_proxies,
        "REGISTER_RATE_IP": settings.register_rate_ip,
        "API_RATE_IP": settings.api_rate_ip,
        "CORS_ORIGINS": settings.cors_origin_list,
        "SSE_KEEPALIVE_SECONDS": 15.0,
        "SSE_POLL_SECONDS": 1.0,
        "READY_TIMEOUT": 2.0,
        "READY_CACHE_SECONDS": 2.0,
        "AMQP_URI": settings.amqp_uri,  # the dead-letter gauge of /metrics reads its queues
        "DEAD_LETTERS_CACHE_SECONDS": 5.0,
    }


def build_rpc(settings: Settings) -> RpcClient:
    pool = RpcPool.from_settings(settings)
    atexit.register(pool.close)
    return pool


def build_redis(settings: Settings) -> Redis:
    return Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
    )


def create_app(
    test_config: Mapping[str, Any] | None = None,
    *,
    rpc: RpcClient | None = None,
    redis: Redis | None = None,
    services: Services | None = None,
) -> Flask:
    """The gateway app; builds the RPC pool, the service clients over it and the Redis
    client unless they are passed in (tests pass fakes)."""
    settings = get_settings()
    app = Flask(__name__, static_folder=None)
    app.config.from_mapping(settings_config(settings))
    app.config.from_mapping(test_config or {})
    if not app.testing:
        configure_logging(settings.log_level)
        tracing.setup("gateway", settings)
    trust_proxies(app)
    init_middleware(app)
    init_cors(app)
    registry = init_metrics(app)
    register_error_handlers(app)
    init_jwt(app)
    limiter = init_limiter(app)
    app.url_map.converters["id"] = IdConverter
    app.url_map.converters["job"] = JobIdConverter
    app.url_map.converters["conversation"] = ConversationIdConverter
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    apply_limits(app, limiter)
    health.init_ready(app)
    init_dead_letters(app)
    rpc = rpc if rpc is not None else build_rpc(settings)
    install(
        app,
        Deps(
            rpc=rpc,
            services=services if services is not None else Services.over(rpc),
            redis=redis if redis is not None else build_redis(settings),
            metrics=registry,
            limiter=limiter,
        ),
    )
    return app
