"""A service that does nothing, for ``tests.bench.framework_floor``: what one RPC call and one
event delivery cost in this mesh's framework before a service does any work of its own.

Each entrypoint exists twice, in one process: as the mesh declares its services
(``mesh.rpc.rpc``, the reliable event handler with its retry and dead-letter queues) and as
bare nameko.
"""

from __future__ import annotations

from typing import Any

from nameko.events import event_handler
from nameko.rpc import rpc as nameko_rpc

from mesh.events import ReliableEventHandler
from mesh.rpc import rpc

NAME = "bench_floor"
SOURCE = "bench_floor_source"
MESH_EVENT = "pinged"
BARE_EVENT = "pinged_bare"


BARE_NAME = "bench_floor_bare"
handled = [0]  # events taken by both services: the bench polls it to know when all are in


class FloorService:
    """As the mesh declares its services."""

    name = NAME

    @rpc
    def noop(self) -> None:
        return None

    @rpc
    def handled_count(self) -> int:
        return handled[0]

    @ReliableEventHandler.decorator(SOURCE, MESH_EVENT)
    def on_pinged(self, body: Any) -> None:
        handled[0] += 1


class BareFloorService:
    """As bare nameko (its RPC methods need a service of their own: nameko's consumer and the
    mesh's each take the requests of a service's queue, and know only their own methods)."""

    name = BARE_NAME

    @nameko_rpc
    def noop(self) -> None:
        return None

    @event_handler(SOURCE, BARE_EVENT)
    def on_pinged_bare(self, body: Any) -> None:
        handled[0] += 1
