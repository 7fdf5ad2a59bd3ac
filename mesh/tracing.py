"""OpenTelemetry tracing: one trace follows a request through the gateway, RPC, the outbox,
the event handlers and the Dramatiq actors.

Off unless ``TRACING_ENABLED``: then nothing of OpenTelemetry is imported and every hook
returns at its first line. On, each process exports its spans over OTLP/HTTP to
``OTEL_EXPORTER_OTLP_ENDPOINT`` through a batching processor, as ``service.name`` = the
mesh process (gateway, users, orders, ..., workers, mirror).

The W3C ``traceparent`` travels beside the correlation id: the HTTP header into the gateway;
the nameko context-data key ``traceparent`` (header ``nameko.traceparent``) on RPC and events;
the outbox row between commit and publish; a Dramatiq message's options. A hook pair holds a
:class:`Scope` (None when off) from :func:`open_span` to :func:`close_span`; a block uses
:func:`span`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from mesh.settings import Settings

TRACEPARENT = "traceparent"
"""The W3C header, and the key it has in nameko context data and Dramatiq message options."""

Kind = Literal["server", "client", "producer", "consumer", "internal"]

_tracer: Tracer | None = None  # set by setup() when tracing is on: the one "on" switch
_provider: TracerProvider | None = None
_OFF: nullcontext[None] = nullcontext()


class Scope:
    """An open span, current in this thread (green or not) until :func:`close_span`."""

    __slots__ = ("span", "token")

    def __init__(self, span: Span, token: Token[Context]) -> None:
        self.span, self.token = span, token


def setup(service: str, settings: Settings, exporter: SpanExporter | None = None) -> bool:
    """Start exporting this process's spans as ``service`` when TRACING_ENABLED; True if on.

    The first call of a process wins. ``exporter`` replaces the OTLP exporter (tests).
    """
    global _tracer, _provider
    if _tracer is not None or not settings.tracing_enabled:
        return _tracer is not None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=traces_url(settings.otel_exporter_otlp_endpoint))
    resource = Resource.create(
        {
            "service.name": service,
            "service.namespace": "mesh",
            "service.instance.id": f"{socket.gethostname()}:{os.getpid()}",
        }
    )
    sampler = ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio))
    provider = TracerProvider(resource=resource, sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _provider, _tracer = provider, provider.get_tracer("mesh")
    return True


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base URL (``http://host:4318``)."""
    return endpoint.rstrip("/") + "/v1/traces"


def enabled() -> bool:
    return _tracer is not None


def flush() -> None:
    """Export every finished span now (tests; the processor otherwise batches)."""
    if _provider is not None:
        _provider.force_flush()


def shutdown() -> None:
    """Flush and turn tracing off in this process (tests; at exit the SDK flushes itself)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def traceparent() -> str | None:
    """The W3C traceparent of the current span; None when off or no span is current."""
    if _tracer is None:
        return None
    from opentelemetry.trace import get_current_span

    ctx = get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def inject(carrier: MutableMapping[str, Any], key: str = TRACEPARENT) -> None:
    """Put the current span's traceparent in ``carrier[key]``, or take a stale one out
    (a carrier may be reused, like a pooled RPC proxy's context). Off: leaves it alone."""
    if _tracer is None:
        return
    value = traceparent()
    if value is None:
        carrier.pop(key, None)
    else:
        carrier[key] = value


def extract(carrier: Mapping[str, Any], key: str = TRACEPARENT) -> str | None:
    """The traceparent ``carrier`` holds under ``key``, if any (None when off)."""
    if _tracer is None:
        return None
    value = carrier.get(key)
    return value if isinstance(value, str) else None


def open_span(
    name: str,
    kind: Kind = "internal",
    parent: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Scope | None:
    """Start a span and make it current: a child of the traceparent ``parent`` if given and
    well-formed, else of the current span, else the root of a new trace. None when off."""
    if _tracer is None:
        return None
    from opentelemetry import context
    from opentelemetry.trace import SpanKind, set_span_in_context

    span = _tracer.start_span(
        name,
        context=_context_of(parent),
        kind=SpanKind[kind.upper()],
        attributes=dict(attributes or {}),
    )
    return Scope(span, context.attach(set_span_in_context(span)))


def close_span(scope: Scope | None, error: BaseException | None = None) -> None:
    """End the span of ``scope`` (failed with ``error``, if given) and restore the context
    that was current before it. None (tracing off): nothing."""
    if scope is None:
        return
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode

    if error is not None:
        scope.span.record_exception(error)
        scope.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    scope.span.end()
    context.detach(scope.token)


def span(
    name: str,
    kind: Kind = "internal",
    parent: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> AbstractContextManager[None]:
    """A span around a block (see :func:`open_span`); an exception fails it. Off: a no-op."""
    if _tracer is None:
        return _OFF
    return _spanned(name, kind, parent, attributes)


def tag(key: str, value: Any, error: bool = False) -> None:
    """Set an attribute of the current span (``error``: mark it failed). Off: nothing."""
    if _tracer is None:
        return
    from opentelemetry.trace import Status, StatusCode, get_current_span

    current = get_current_span()
    current.set_attribute(key, value)
    if error:
        current.set_status(Status(StatusCode.ERROR, f"{key}={value}"))


@contextmanager
def _spanned(
    name: str, kind: Kind, parent: str | None, attributes: Mapping[str, Any] | None
) -> Iterator[None]:
    scope = open_span(name, kind, parent, attributes)
    try:
        yield
    except BaseException as exc:
        close_span(scope, exc)
        raise
    close_span(scope)


def _context_of(parent: str | None) -> Context | None:
    if not parent:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    extracted = TraceContextTextMapPropagator().extract({TRACEPARENT: parent})
    return extracted or None
