"""The one error hierarchy of the mesh.

Every class is registered with nameko so that an error raised in a service
arrives at the RPC caller as the same class, with the same arguments.
"""

from __future__ import annotations

from typing import Any

from nameko.exceptions import deserialize_to_instance


class MeshError(Exception):
    """Base of every expected error; ``status`` and ``code`` map it to HTTP."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message, details)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


@deserialize_to_instance
class InvalidInput(MeshError):
    """A payload broke its contract."""

    status = 422
    code = "invalid_input"


@deserialize_to_instance
class NotFound(MeshError):
    status = 404
    code = "not_found"


@deserialize_to_instance
class Conflict(MeshError):
    status = 409
    code = "conflict"


@deserialize_to_instance
class AuthenticationFailed(MeshError):
    status = 401
    code = "unauthorized"


@deserialize_to_instance
class Forbidden(MeshError):
    status = 403
    code = "forbidden"


@deserialize_to_instance
class Unavailable(MeshError):
    status = 503
    code = "unavailable"


class PermanentFailure(MeshError):
    """Retrying cannot help: an event handler dead-letters the message at once."""


class ContractViolation(PermanentFailure, InvalidInput):
    """A message on the bus does not match its contract."""
