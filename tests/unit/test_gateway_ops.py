"""/health, /ready, /metrics, the OpenAPI document and the docs page."""

from __future__ import annotations

import re

from gateway.routes.health import READY_SERVICES, init_ready

EVERY_SERVICE = READY_SERVICES


def test_readiness_pings_every_service_of_the_mesh():
    assert {"users", "catalog", "orders", "notifications", "courses", "content"} <= set(
        READY_SERVICES
    )


def test_health_needs_nothing(client, fake_rpc, transport, fake_redis):
    fake_redis.down = True
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert fake_rpc.pings == [] and transport.calls == []


def test_ready_when_every_dependency_answers(client, fake_rpc):
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "services": dict.fromkeys(EVERY_SERVICE, "ok"),
        "redis": "ok",
    }
    assert sorted(fake_rpc.pings) == sorted(READY_SERVICES)


def test_not_ready_when_a_service_does_not_answer(client, fake_rpc):
    fake_rpc.down.add("notifications")
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["services"] == {
        **dict.fromkeys(EVERY_SERVICE, "ok"),
        "notifications": "unavailable",
    }
    assert body["redis"] == "ok"


def test_a_service_answering_the_wrong_name_is_not_ready(client, fake_courses, monkeypatch):
    monkeypatch.setattr(fake_courses, "ping", lambda: "catalog")
    body = client.get("/ready").get_json()
    assert (body["status"], body["services"]["courses"]) == ("unavailable", "unexpected answer")


def test_not_ready_when_redis_does_not_answer(client, fake_redis):
    fake_redis.down = True
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.get_json()["redis"] == "unavailable"


ROUND = len(EVERY_SERVICE)  # pings in one readiness round


def test_ready_pings_at_most_once_per_two_seconds(app, client, fake_rpc, clock):
    init_ready(app, clock=clock)
    assert client.get("/ready").status_code == 200
    assert len(fake_rpc.pings) == ROUND

    fake_rpc.down.add("orders")
    clock.now += 1.9
    assert client.get("/ready").status_code == 200  # the cached answer
    assert len(fake_rpc.pings) == ROUND

    clock.now += 0.1
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.get_json()["services"]["orders"] == "unavailable"
    assert len(fake_rpc.pings) == 2 * ROUND


def test_each_app_has_its_own_readiness_cache(make_app, fake_rpc):
    make_app().test_client().get("/ready")
    make_app().test_client().get("/ready")
    assert len(fake_rpc.pings) == 2 * ROUND


def test_metrics_count_requests_by_route_and_status(client):
    client.get("/health")
    client.get("/no/such/page")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'gateway_requests_total{endpoint="/health",method="GET",status="200"} 1.0' in text
    assert 'endpoint="<unmatched>",method="GET",status="404"' in text
    assert "gateway_request_duration_seconds_bucket" in text


def test_each_app_has_its_own_metrics(make_app):
    first, second = make_app().test_client(), make_app().test_client()
    first.get("/health")
    text = second.get("/metrics").get_data(as_text=True)
    assert 'endpoint="/health"' not in text


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_openapi_lists_every_route_of_the_app(client, app):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    served = {
        (re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert served == documented


def test_openapi_refs_resolve_and_errors_use_the_error_schema(client):
    spec = client.get("/api/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    for ref in _refs(spec):
        kind, name = ref.split("/")[-2:]
        assert name in spec["components"][kind], ref
    register = spec["paths"]["/api/auth/register"]["post"]
    assert set(register["requestBody"]["content"]["application/json"]["schema"].values()) == {
        "#/components/schemas/RegisterRequest"
    }
    assert {"201", "400", "409", "413", "415", "422", "429", "500", "503"} <= set(
        register["responses"]
    )
    error_ref = register["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert error_ref.endswith("/ErrorBody")
    assert {"error", "message"} <= set(schemas["ErrorBody"]["required"])
    assert spec["paths"]["/api/users/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "403" in spec["paths"]["/api/events/stream"]["get"]["responses"]


CACHED_ROUTES = (
    "/api/products/{product_id}",
    "/api/orders/{order_id}",
    "/api/users/{user_id}",
    "/api/courses/{course_id}/progress",
)


def test_openapi_documents_the_cache_header_on_cached_routes_only(client):
    spec = client.get("/api/openapi.json").get_json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            headers = op["responses"][next(iter(op["responses"]))].get("headers", {})
            assert ("X-Cache" in headers) == (method == "get" and path in CACHED_ROUTES), path
    header = spec["components"]["headers"]["XCache"]
    assert header["schema"]["enum"] == ["HIT", "MISS"]


def test_openapi_documents_path_ids_limits_and_admin_writes(client):
    spec = client.get("/api/openapi.json").get_json()
    for path, ops in spec["paths"].items():
        for op in ops.values():
            if path.startswith("/api/"):
                assert "429" in op["responses"], path
            names = {p["name"] for p in op["parameters"] if p.get("in") == "path"}
            assert names == set(re.findall(r"{(\w+)}", path)), path
            if names:
                assert "404" in op["responses"], path
    create = spec["paths"]["/api/products"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ProductCreate"
    )
    assert {"201", "401", "403", "422"} <= set(create["responses"])
    listing = spec["paths"]["/api/products"]["get"]
    assert [p["name"] for p in listing["parameters"][1:]] == ["q", "limit", "offset"]
    assert listing["security"] == []
    order = spec["paths"]["/api/orders/{order_id}"]
    assert order["get"]["security"] == [{"bearerAuth": []}]
    assert "403" in order["patch"]["responses"]
    assert "403" not in order["get"]["responses"]


def test_docs_page_links_the_raw_spec(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert 'href="/api/openapi.json"' in response.get_data(as_text=True)


def test_docs_assets_are_served_as_documented(client):
    spec = client.get("/api/openapi.json").get_json()
    documented = spec["paths"]["/api/docs/assets/{name}"]["get"]["responses"]["200"]["content"]
    for name in ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"):
        response = client.get(f"/api/docs/assets/{name}")
        assert response.status_code == 200 and response.mimetype in documented, name
        assert response.headers["Cache-Control"] == "public, max-age=86400"
    assert client.get("/api/docs/assets/secret.py").status_code == 404


def test_openapi_operation_ids_are_unique_identifiers(client):
    spec = client.get("/api/openapi.json").get_json()
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z]+_\w+", op_id) for op_id in ids), ids


def test_metrics_include_the_services_outbox_files(client, tmp_path, monkeypatch):
    from prometheus_client import CollectorRegistry

    from mesh.metrics import TextfileWriter
    from mesh.outbox import RelayMonitor
    from mesh.settings import get_settings

    monkeypatch.setenv("MESH_VAR_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        registry = CollectorRegistry()
        RelayMonitor("orders", registry, 60).observe(4, 90.0)
        TextfileWriter(tmp_path, "outbox-orders", registry).write()
        text = client.get("/metrics").get_data(as_text=True)
    finally:
        get_settings.cache_clear()
    assert 'mesh_outbox_backlog{pid="' in text and 'service="orders"} 4.0' in text
    assert "mesh_outbox_oldest_unpublished_seconds" in text
    assert "gateway_requests_total" in text
