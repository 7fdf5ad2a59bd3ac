"""Registers the mesh's error classes with nameko, so an RPC caller gets the same class back.

The classes themselves live in ``contracts.errors``; a caller (the gateway, or a service
calling another) runs :func:`register_remote_errors` before its first call.
"""

from __future__ import annotations

from nameko.exceptions import deserialize_to_instance

from contracts.errors import REMOTE_ERRORS


def register_remote_errors() -> None:
    """Make nameko rebuild every contracts error as itself (idempotent)."""
    for error in REMOTE_ERRORS:
        deserialize_to_instance(error)
