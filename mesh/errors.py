"""The mesh's errors at a process boundary.

- :func:`register_remote_errors` makes nameko rebuild every ``contracts.errors`` class as itself
  at an RPC caller (the gateway, or a service calling another) before its first call;
- :data:`INFRASTRUCTURE_ERRORS` are the driver errors of a store or service that did not
  answer: ``mesh.typed.expose`` turns them into ``Unavailable``, so every caller sees one
  retryable error, whichever store failed (and the gateway one 503).
"""

from __future__ import annotations

import pymongo.errors
import redis.exceptions
import sqlalchemy.exc
from nameko.exceptions import deserialize_to_instance

from contracts.errors import REMOTE_ERRORS

INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,  # database down, unreachable, locked, out of connections
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection in time
    pymongo.errors.ConnectionFailure,  # AutoReconnect, ServerSelectionTimeoutError, NetworkTimeout
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    TimeoutError,  # another service did not answer (mesh.rpc.BoundedTransport)
)
"""What a store or a service raises when it does not answer: retrying later may work."""


def register_remote_errors() -> None:
    """Make nameko rebuild every contracts error as itself (idempotent)."""
    for error in REMOTE_ERRORS:
        deserialize_to_instance(error)
