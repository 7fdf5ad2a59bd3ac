"""The consumer registry must match the handlers the services really declare."""

from __future__ import annotations

import inspect

from nameko.events import EventHandler

from contracts.registry import EVENTS, SUBSCRIPTIONS
from mesh import topology
from mesh.events import ReliableEventHandler
from services.catalog.service import CatalogService
from services.notifications.service import NotificationsService
from services.orders.service import OrdersService
from services.users.service import UsersService

SERVICES = (UsersService, CatalogService, OrdersService, NotificationsService)


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
