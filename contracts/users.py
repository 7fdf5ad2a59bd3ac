"""Users: the user.registered event and the users RPC payloads."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, ClassVar, Literal, Protocol

from pydantic import EmailStr, Field, StringConstraints, field_validator

from contracts.base import Contract, Event, Id, Text, UtcDatetime

PASSWORD_MIN, PASSWORD_MAX = 10, 128
_COMMON = {
    "password",
    "password1",
    "password12",
    "password123",
    "1234567890",
    "12345678910",
    "qwertyuiop",
    "qwerty1234",
    "iloveyou12",
    "letmein123",
    "welcome123",
    "administrator",
    "changeme123",
    "passw0rd12",
    "abc1234567",
    "football12",
    "monkey1234",
}


def _check_password(value: str) -> str:
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise ValueError(f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    if value.lower() in _COMMON or len(set(value)) < 4:
        raise ValueError("is too common or too simple")
    return value


def _check_name(value: str) -> str:
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise ValueError("must not contain control characters")
    return re.sub(r"\s+", " ", value)


Email = Annotated[Text, StringConstraints(min_length=1, max_length=254)]


class UserRegistered(Event):
    """A user's row is committed. Carries the id only: read the rest from users."""

    type: ClassVar[str] = "user.registered"
    source: ClassVar[str] = "users"

    user_id: int


Role = Literal["student", "instructor"]
"""What a user registered as; administrators are made from the command line only."""


class RegisterRequest(Contract):
    email: EmailStr = Field(max_length=254)
    password: str = Field(repr=False)
    name: str = Field(min_length=1, max_length=100)
    role: Role = "student"

    _password = field_validator("password")(_check_password)
    _name = field_validator("name")(_check_name)

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class Credentials(Contract):
    email: Email
    password: str = Field(min_length=1, max_length=PASSWORD_MAX, repr=False)


class UserOut(Contract):
    id: int
    email: str
    name: str
    role: Role = "student"
    is_admin: bool = False
    created_at: UtcDatetime


class PublicUser(Contract):
    id: int
    name: str


class UsersApi(Protocol):
    """The users service's RPC surface (service name ``users``)."""

    def register(self, request: RegisterRequest) -> UserOut:
        """Store a new user (Conflict if the e-mail is taken) and announce user.registered."""
        ...

    def authenticate(self, credentials: Credentials) -> UserOut:
        """The user for these credentials; AuthenticationFailed, the same for every reason."""
        ...

    def get_user(self, user_id: Id) -> UserOut: ...

    def promote_admin(self, email: Email) -> UserOut:
        """Make an existing user an administrator."""
        ...
