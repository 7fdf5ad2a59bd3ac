"""The consumer registry must match the handlers the services really declare."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from nameko.events import EventHandler

from contracts.registry import EVENTS, SUBSCRIPTIONS
from mesh import topology
from mesh.events import ReliableEventHandler

ROOT = Path(__file__).resolve().parents[2]


def service_classes() -> list[type]:
    """The Nameko service class of every ``services/<name>/service.py`` in the tree."""
    classes = []
    for module_file in sorted((ROOT / "services").glob("*/service.py")):
        module = importlib.import_module(f"services.{module_file.parent.name}.service")
        classes += [
            member
            for _, member in inspect.getmembers(module, inspect.isclass)
            if member.__module__ == module.__name__
            and isinstance(getattr(member, "name", None), str)
        ]
    return classes


SERVICES = tuple(service_classes())


def declared_handlers() -> dict[str, set[tuple[str, str]]]:
    found: dict[str, set[tuple[str, str]]] = {}
    for service in SERVICES:
        for method_name, method in inspect.getmembers(service, inspect.isfunction):
            for entrypoint in getattr(method, "nameko_entrypoints", ()):
                if isinstance(entrypoint, EventHandler):
                    assert isinstance(entrypoint, ReliableEventHandler), method_name
                    found.setdefault(entrypoint.event_type, set()).add((service.name, method_name))
    return found


def test_registry_lists_exactly_the_declared_handlers() -> None:
    registry = {etype: set(handlers) for etype, handlers in SUBSCRIPTIONS.items()}
    assert registry == declared_handlers()


def test_every_subscribed_event_is_a_known_contract() -> None:
    assert set(SUBSCRIPTIONS) <= {event.type for event in EVENTS}


def test_queue_names_follow_nameko() -> None:
    queue = topology.handler_queue("users", "user.registered", "notifications", "on_x")
    assert queue.name == "evt-users-user.registered--notifications.on_x"
    assert queue.exchange.name == "users.events"
    assert queue.routing_key == "user.registered"
