"""mesh.tracing: off is a no-op that imports nothing; on, the traceparent carries a trace
across the hooks of the gateway, nameko workers, the outbox and Dramatiq."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from nameko.events import EventHandler
from nameko.rpc import Rpc
from nameko.timer import Timer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import MetaData, select

from contracts.users import UserRegistered
from gateway import rpc_pool
from mesh import tracing
from mesh.outbox import AmqpEventPublisher, add_event, outbox_table
from mesh.providers import CorrelationContext
from mesh.settings import Settings
from mesh.sql import make_sessionmaker
from mesh.tasks import CorrelationMiddleware

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def traced() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, its spans kept in memory."""
    exporter = InMemorySpanExporter()
    assert tracing.setup("test", Settings(tracing_enabled=True), exporter)
    yield exporter
    tracing.shutdown()


def finished(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    tracing.flush()
    return {span.name: span for span in exporter.get_finished_spans()}


def ids(traceparent: str | None) -> tuple[int, int]:
    """(trace id, span id) of a traceparent."""
    match = TRACEPARENT.fullmatch(traceparent or "")
    assert match, traceparent
    return int(match[1], 16), int(match[2], 16)


def parent_of(span: ReadableSpan) -> tuple[int, int] | None:
    return (span.parent.trace_id, span.parent.span_id) if span.parent else None


def own(span: ReadableSpan) -> tuple[int, int]:
    return span.context.trace_id, span.context.span_id


# ---------------------------------------------------------------- off


def test_tracing_is_off_by_default() -> None:
    assert Settings().tracing_enabled is False
    assert tracing.setup("test", Settings()) is False
    assert not tracing.enabled()


def test_off_every_hook_is_a_no_op() -> None:
    carrier = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    assert tracing.open_span("a", "server", carrier["traceparent"]) is None
    tracing.close_span(None, ValueError("ignored"))
    assert tracing.traceparent() is None
    assert tracing.extract(carrier) is None
    tracing.inject(carrier)  # neither replaced nor removed: not ours to touch
    assert carrier == {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    tracing.tag("k", "v", error=True)
    with pytest.raises(KeyError), tracing.span("block"):
        raise KeyError("still raised")


def test_off_the_tracing_sdk_is_not_even_imported() -> None:
    # (redis-py imports OpenTelemetry's metrics SDK by itself when it is installed)
    probe = """
import sys
from types import SimpleNamespace
from mesh import tracing
from mesh.settings import Settings
import mesh.providers, mesh.tasks, mesh.outbox, gateway.middleware, gateway.rpc_pool
assert tracing.setup("probe", Settings()) is False
tracing.close_span(tracing.open_span("x"))
with tracing.span("y"):
    tracing.inject({})
gateway.rpc_pool._set_correlation(SimpleNamespace(_worker_ctx=SimpleNamespace(data={})))
ours = ("opentelemetry.sdk.trace", "opentelemetry.exporter", "opentelemetry.trace.propagation.")
print(sorted(m for m in sys.modules if m.startswith(ours)))
"""
    env = {"PATH": "/usr/bin:/bin", "TRACING_ENABLED": "false"}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- on


def test_the_traces_url_is_under_the_collectors_base() -> None:
    assert tracing.traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"


def test_inject_then_extract_continues_the_trace(traced: InMemorySpanExporter) -> None:
    headers: dict[str, Any] = {}
    outer = tracing.open_span("outer", "client")
    tracing.inject(headers)
    tracing.close_span(outer)
    tracing.close_span(tracing.open_span("inner", "server", tracing.extract(headers)))
    spans = finished(traced)
    assert ids(headers["traceparent"]) == own(spans["outer"])
    assert parent_of(spans["inner"]) == own(spans["outer"])
    assert spans["inner"].kind is SpanKind.SERVER


def test_inject_takes_out_a_stale_traceparent(traced: InMemorySpanExporter) -> None:
    carrier = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    tracing.inject(carrier)  # no span is current
    assert carrier == {}


def test_a_malformed_parent_starts_a_new_trace(traced: InMemorySpanExporter) -> None:
    tracing.close_span(tracing.open_span("root", "server", "00-nonsense"))
    assert finished(traced)["root"].parent is None


def test_a_span_is_current_until_closed(traced: InMemorySpanExporter) -> None:
    scope = tracing.open_span("a")
    current = tracing.traceparent()
    tracing.close_span(scope)
    assert ids(current) == own(finished(traced)["a"])
    assert tracing.traceparent() is None


def test_a_block_that_raises_fails_its_span(traced: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError), tracing.span("block"):
        raise ValueError("boom")
    span = finished(traced)["block"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.events[0].name == "exception"


# ---------------------------------------------------------------- nameko workers


class FakeContainer:
    service_name = "orders"


CONTAINER = FakeContainer()  # a provider holds its container by a weak reference


class FakeWorkerContext:
    """What the provider reads of nameko's WorkerContext."""

    service_name = "orders"

    def __init__(self, entrypoint: Any, data: dict[str, Any]) -> None:
        self.entrypoint, self.data = entrypoint, data


def worker(entrypoint: Any, method: str, data: dict[str, Any]) -> Any:
    entrypoint.method_name = method
    return FakeWorkerContext(entrypoint, data)


def correlation_context() -> CorrelationContext:
    provider = CorrelationContext().bind(CONTAINER, "context")
    provider.setup()
    return provider


def test_a_worker_span_continues_the_callers_and_goes_on_in_the_context_data(
    traced: InMemorySpanExporter,
) -> None:
    caller = tracing.open_span("gateway")
    incoming = tracing.traceparent()
    tracing.close_span(caller)
    provider = correlation_context()
    ctx = worker(Rpc(), "create_order", {"correlation_id": "req-1", "traceparent": incoming})
    provider.worker_setup(ctx)
    sent_on = ctx.data["traceparent"]
    provider.worker_result(ctx, None, (ValueError, ValueError("refused"), None))
    provider.worker_teardown(ctx)
    span = finished(traced)["orders.create_order"]
    assert span.kind is SpanKind.SERVER
    assert parent_of(span) == ids(incoming)
    assert ids(sent_on) == own(span)
    assert span.attributes == {"mesh.correlation_id": "req-1"}
    assert span.status.status_code is StatusCode.ERROR
    assert tracing.traceparent() is None  # the worker's context is restored


@pytest.mark.parametrize(
    ("entrypoint", "kind"),
    [(EventHandler("orders", "order.created"), SpanKind.CONSUMER), (Timer(5), SpanKind.INTERNAL)],
)
def test_event_handlers_consume_and_timers_start_traces(
    traced: InMemorySpanExporter, entrypoint: Any, kind: SpanKind
) -> None:
    provider = correlation_context()
    ctx = worker(entrypoint, "tick", {})
    provider.worker_setup(ctx)
    provider.worker_result(ctx)
    span = finished(traced)["orders.tick"]
    assert span.kind is kind and span.parent is None


def test_off_a_worker_passes_the_callers_traceparent_on_untouched() -> None:
    provider = correlation_context()
    ctx = worker(Rpc(), "create_order", {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
    provider.worker_setup(ctx)
    provider.worker_result(ctx)
    assert ctx.data["traceparent"] == "00-" + "1" * 32 + "-" + "2" * 16 + "-01"


# ---------------------------------------------------------------- outbox


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def publish(self, payload: Any, **options: Any) -> None:
        self.sent.append(options)


def test_the_outbox_row_keeps_the_trace_and_its_publish_continues_it(
    traced: InMemorySpanExporter, tmp_path: Path
) -> None:
    table = outbox_table(MetaData())
    sessions = make_sessionmaker(f"sqlite:///{tmp_path / 'o.db'}", table.metadata)
    scope = tracing.open_span("orders.create_order", "server")
    with sessions() as session, session.begin():
        add_event(session, table, UserRegistered(user_id=1))
    tracing.close_span(scope)
    with sessions() as session:
        row = session.execute(select(table)).one()
    publisher = AmqpEventPublisher("amqp://guest:guest@127.0.0.1:1/")
    publisher.publisher = recording = RecordingPublisher()
    publisher(row)
    spans = finished(traced)
    assert ids(row.traceparent) == own(spans["orders.create_order"])
    publish = spans["publish user.registered"]
    assert publish.kind is SpanKind.PRODUCER
    assert parent_of(publish) == own(spans["orders.create_order"])
    headers = recording.sent[0]["extra_headers"]
    assert ids(headers["nameko.traceparent"]) == own(publish)
    assert json.loads(row.payload)["user_id"] == 1  # the event itself is unchanged


# ---------------------------------------------------------------- Dramatiq


def test_a_task_carries_the_trace_to_its_actor(traced: InMemorySpanExporter) -> None:
    middleware = CorrelationMiddleware()
    message = SimpleNamespace(
        message_id="m1", actor_name="send_email", queue_name="email", options={}
    )
    handler = tracing.open_span("notifications.on_order_created", "consumer")
    middleware.before_enqueue(None, message, None)  # type: ignore[arg-type]
    tracing.close_span(handler)
    sent = message.options["traceparent"]
    middleware.before_enqueue(None, message, None)  # type: ignore[arg-type]  # a retry
    assert message.options["traceparent"] == sent
    middleware.before_process_message(None, message)  # type: ignore[arg-type]
    middleware.after_process_message(None, message, exception=OSError("smtp down"))
    spans = finished(traced)
    actor = spans["send_email"]
    assert actor.kind is SpanKind.CONSUMER
    assert parent_of(actor) == own(spans["notifications.on_order_created"])
    assert actor.status.status_code is StatusCode.ERROR
    assert tracing.traceparent() is None


# ---------------------------------------------------------------- gateway


def test_a_request_is_a_server_span_that_continues_the_clients(
    traced: InMemorySpanExporter, make_app: Any
) -> None:
    client_span = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    with make_app().test_client() as client:
        response = client.get("/health", headers={"traceparent": client_span})
    assert response.status_code == 200
    span = finished(traced)["GET /health"]
    assert span.kind is SpanKind.SERVER
    assert parent_of(span) == ids(client_span)
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["mesh.correlation_id"] == response.headers["X-Request-ID"]


def test_an_rpc_call_is_a_client_span_sent_as_nameko_context(
    traced: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.test_gateway_rpc_pool import FakeProxyRunner, FakeServiceProxy, echo

    FakeProxyRunner.instances, FakeProxyRunner.answer = [], staticmethod(echo)
    FakeProxyRunner.start_error = None
    monkeypatch.setattr(rpc_pool, "ClusterRpcProxy", FakeProxyRunner)
    monkeypatch.setattr(rpc_pool, "ServiceProxy", FakeServiceProxy)
    pool = rpc_pool.RpcPool("amqp://broker/")
    pool.call("orders", "create_order", 1)
    pool.call("users", "ping")  # the same pooled proxy, sending its own call's span
    seen = FakeProxyRunner.instances[0].seen
    spans = finished(traced)
    call = spans["orders.create_order"]
    assert call.kind is SpanKind.CLIENT
    assert ids(seen[0][2]["traceparent"]) == own(call)
    assert ids(seen[1][2]["traceparent"]) == own(spans["users.ping"])
