"""The errors that cross a process boundary: one hierarchy, no transport in it.

A service raises them; the RPC caller gets the same class back (``mesh.errors`` registers
them with nameko), and the gateway maps each class to an HTTP status (``gateway.errors``).
"""

from __future__ import annotations

from typing import Any


class MeshError(Exception):
    """Base of every expected error: a message for people, optional details for programs."""

    def __init__(self, message: str, details: Any = None) -> None:
        # Only real arguments travel: nameko stringifies each one, so a None would arrive
        # as the string "None".
        super().__init__(*((message,) if details is None else (message, details)))
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class InvalidInput(MeshError):
    """A payload broke its contract."""


class NotFound(MeshError):
    """No such resource, or not one the caller may see."""


class Conflict(MeshError):
    """The request clashes with the current state (a duplicate, a full course, a bad move)."""


class AuthenticationFailed(MeshError):
    """Bad credentials, or an account that no longer exists."""


class Forbidden(MeshError):
    """Authenticated, but not allowed."""


class Unavailable(MeshError):
    """A service or store did not answer in time; retrying later may work."""


class PermanentFailure(MeshError):
    """Retrying cannot help: an event handler dead-letters the message at once."""


class ContractViolation(PermanentFailure, InvalidInput):
    """A message on the bus does not match its contract."""


def field_error(field: str, message: str) -> InvalidInput:
    """An InvalidInput naming one field."""
    return InvalidInput("invalid input", [{"field": field, "message": message}])


REMOTE_ERRORS: tuple[type[MeshError], ...] = (
    MeshError,
    InvalidInput,
    NotFound,
    Conflict,
    AuthenticationFailed,
    Forbidden,
    Unavailable,
    PermanentFailure,
    ContractViolation,
)
"""Every class an RPC caller gets back as itself."""
