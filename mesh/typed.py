"""Typed RPC: contract models on both ends, wire dicts only in between.

Each service's RPC surface is a ``Protocol`` in ``contracts/<service>.py``. Two adapters
keep the wire (JSON-ready dicts and lists) out of everyone's code:

- :func:`client` turns any :class:`Transport` (the gateway's RPC pool, a service's bounded
  proxy, a test's in-process call) into an object that satisfies the Protocol: arguments are
  dumped from their annotated types, answers validated into the annotated return type.
- :func:`expose` is the Nameko side: it validates the wire arguments of a service method
  against the method's annotations (InvalidInput on failure), and dumps what it returns. A
  store or service that did not answer (:data:`mesh.errors.INFRASTRUCTURE_ERRORS`) becomes
  ``Unavailable``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast, get_type_hints

from pydantic import TypeAdapter, ValidationError

from contracts.base import field_errors
from contracts.errors import InvalidInput, MeshError, Unavailable
from mesh.errors import INFRASTRUCTURE_ERRORS
from mesh.unconfirmed import rpc

log = logging.getLogger(__name__)

P = TypeVar("P")
F = TypeVar("F", bound=Callable[..., Any])


class Transport(Protocol):
    """Calls ``service.method`` with wire arguments and returns the wire answer."""

    def call(self, service: str, method: str, *args: Any) -> Any: ...


@dataclass(frozen=True)
class Shape:
    """A method's parameters and answer, as pydantic adapters (built once per method)."""

    signature: inspect.Signature
    params: dict[str, TypeAdapter[Any]]
    answer: TypeAdapter[Any] | None

    def dump_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return [
            self.params[name].dump_python(value, mode="json", exclude_unset=True)
            for name, value in bound.arguments.items()
        ]

    def load_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The wire arguments as typed values; InvalidInput names each bad one."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(f"wrong arguments: {exc}") from None
        bound.apply_defaults()
        values: dict[str, Any] = {}
        details: list[dict[str, str]] = []
        for name, value in bound.arguments.items():
            try:
                values[name] = self.params[name].validate_python(value)
            except ValidationError as exc:
                details += [{**d, "field": _field(name, d["field"])} for d in field_errors(exc)]
        if details:
            raise InvalidInput("invalid input", details)
        return values

    def dump_answer(self, value: Any) -> Any:
        if self.answer is None:
            return None
        return self.answer.dump_python(value, mode="json")

    def load_answer(self, value: Any, what: str) -> Any:
        if self.answer is None:
            return None
        try:
            return self.answer.validate_python(value)
        except ValidationError as exc:
            # Never the error's text: it quotes the offending values, i.e. user data.
            where = ", ".join(d["field"] for d in field_errors(exc))
            log.error("the answer of %s broke its contract at %s", what, where)
            raise MeshError(f"the answer of {what} broke its contract") from None


def _field(param: str, inner: str) -> str:
    return param if inner == "body" else f"{param}.{inner}"


@functools.cache
def shape(fn: Callable[..., Any]) -> Shape:
    """The :class:`Shape` of a function or method (``self`` left out)."""
    hints = get_type_hints(fn, include_extras=True)
    signature = inspect.signature(fn)
    parameters = [p for p in signature.parameters.values() if p.name != "self"]
    answer = hints.get("return")
    return Shape(
        signature=signature.replace(parameters=parameters),
        params={p.name: TypeAdapter(hints[p.name]) for p in parameters},
        answer=None if answer is None or answer is type(None) else TypeAdapter(answer),
    )


class _Client:
    """Dumps arguments, calls through the transport, validates the answer."""

    def __init__(self, protocol: type[Any], service: str, transport: Transport) -> None:
        self._protocol = protocol
        self._service = service
        self._transport = transport

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._protocol, name, None)
        if method is None or name.startswith("_"):
            raise AttributeError(f"{self._protocol.__name__} has no method {name}")
        method_shape = shape(method)
        what = f"{self._service}.{name}"

        def call(*args: Any, **kwargs: Any) -> Any:
            wire = method_shape.dump_args(args, kwargs)
            answer = self._transport.call(self._service, name, *wire)
            return method_shape.load_answer(answer, what)

        return call


def client(protocol: type[P], service: str, transport: Transport) -> P:
    """An object that satisfies ``protocol`` by calling ``service`` through ``transport``."""
    return cast(P, _Client(protocol, service, transport))


UNAVAILABLE_MESSAGE = "a backing store did not answer; retry later"


def expose(fn: F) -> F:
    """Make a service method a Nameko RPC entrypoint that speaks its annotated types.

    Wire arguments are validated against the annotations (InvalidInput on failure), and the
    answer is dumped to JSON-ready data. Every MeshError travels back to the caller as itself;
    a driver error of a store that did not answer becomes Unavailable (the original is logged
    here, never sent: its text may name hosts, files or queries).
    """

    @functools.wraps(fn)
    def entrypoint(self: Any, *args: Any, **kwargs: Any) -> Any:
        method_shape = shape(fn)
        values = method_shape.load_args(args, kwargs)
        try:
            answer = fn(self, **values)
        except INFRASTRUCTURE_ERRORS as exc:
            log.error("%s: a store did not answer", fn.__qualname__, exc_info=exc)
            raise Unavailable(UNAVAILABLE_MESSAGE) from exc
        return method_shape.dump_answer(answer)

    return cast(F, rpc(expected_exceptions=MeshError)(entrypoint))
