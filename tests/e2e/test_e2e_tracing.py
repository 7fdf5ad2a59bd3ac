"""One order is one trace: gateway, orders, catalog, the outbox, notifications' event handler
and the e-mail actor each export their spans, linked parent to child (mesh.tracing)."""

from __future__ import annotations

import uuid
from itertools import pairwise

import pytest
import requests

from contracts.notifications import SEND_EMAIL_ACTOR
from tests.e2e.conftest import Mesh
from tests.e2e.test_e2e_commerce import auth, new_product, order
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.e2e

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP Span.SpanKind


@pytest.fixture(scope="module")
def admin(mesh: Mesh) -> dict[str, str]:
    return {"Authorization": f"Bearer {mesh.admin_token()}"}


def trace_of(receiver: OtlpReceiver, request_id: str) -> list[ReceivedSpan]:
    """Every span of the trace the gateway began for the request ``request_id``."""
    roots = [
        s
        for s in receiver.spans()
        if s.service == "gateway" and s.attributes.get("mesh.correlation_id") == request_id
    ]
    if not roots:
        return []
    return [s for s in receiver.spans() if s.trace_id == roots[0].trace_id]


def one(spans: list[ReceivedSpan], service: str, name: str) -> ReceivedSpan | None:
    found = [s for s in spans if s.service == service and s.name == name]
    assert len(found) <= 1, found
    return found[0] if found else None


def test_one_order_is_one_trace_across_the_mesh(mesh: Mesh, admin: dict[str, str]) -> None:
    receiver = mesh.traces
    assert receiver is not None
    buyer = auth(mesh, mesh.register())
    product = new_product(mesh, admin, stock=2)
    request_id = uuid.uuid4().hex
    placed = order(mesh, {**buyer, "X-Request-ID": request_id}, product["id"])
    assert placed.status_code == 201, placed.text
    wanted = [
        ("gateway", "POST /api/orders"),
        ("gateway", "orders.create_order"),
        ("orders", "orders.create_order"),
        ("orders", "publish order.created"),
        ("notifications", "notifications.on_order_created"),
        ("workers", SEND_EMAIL_ACTOR),
    ]

    def complete() -> list[ReceivedSpan]:
        spans = trace_of(receiver, request_id)
        return spans if all(one(spans, *w) for w in wanted) else []

    spans = mesh.eventually(complete, timeout=60, what=f"the spans of {wanted}")
    request, call, rpc, publish, handler, email = (one(spans, *w) for w in wanted)
    assert request and call and rpc and publish and handler and email
    chain = [request, call, rpc, publish, handler, email]
    assert [s.kind for s in chain] == [SERVER, CLIENT, SERVER, PRODUCER, CONSUMER, CONSUMER]
    assert request.parent_span_id == ""  # the client sent no traceparent: a new trace
    for parent, child in pairwise(chain):
        assert child.parent_span_id == parent.span_id, (child.name, parent.name)
    # orders' own RPC to catalog continues the trace too (nameko's context data)
    catalog = [s for s in spans if s.service == "catalog" and s.kind == SERVER]
    assert catalog and all(s.parent_span_id == rpc.span_id for s in catalog)
    assert handler.attributes["mesh.correlation_id"] == request_id


def test_a_client_traceparent_is_continued(mesh: Mesh) -> None:
    receiver = mesh.traces
    assert receiver is not None
    trace_id = uuid.uuid4().hex
    parent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    request_id = uuid.uuid4().hex
    headers = {"traceparent": parent, "X-Request-ID": request_id}
    assert requests.get(mesh.url("/api/products"), headers=headers, timeout=15).ok

    def request_span() -> ReceivedSpan | None:
        return one(trace_of(receiver, request_id), "gateway", "GET /api/products")

    span = mesh.eventually(request_span, timeout=30, what="the request's span")
    assert (span.trace_id, span.parent_span_id) == (trace_id, parent.split("-")[2])
