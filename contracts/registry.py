"""Every event type of the mesh and who consumes it."""

from __future__ import annotations

from contracts.base import Event
from contracts.users import UserRegistered

EVENTS: tuple[type[Event], ...] = (UserRegistered,)

# (event type) -> the nameko handlers bound to it, as (service, method).
# Publishers declare these queues before they publish, so an event is kept
# even when its consumer has never started. tests/unit/test_topology.py
# checks this table against the handlers the services really declare.
SUBSCRIPTIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "user.registered": (("notifications", "on_user_registered"),),
}


def event_by_type(event_type: str) -> type[Event]:
    for event in EVENTS:
        if event.type == event_type:
            return event
    raise KeyError(event_type)


def sources() -> set[str]:
    """The services that publish events."""
    return {event.source for event in EVENTS}
