"""Users: the user.registered event and the users RPC payloads."""

from __future__ import annotations

import re
import unicodedata
from typing import ClassVar

from pydantic import EmailStr, Field, field_validator

from contracts.base import Contract, Event, Text, UtcDatetime

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


class UserRegistered(Event):
    """A user's row is committed. Carries the id only: read the rest from users."""

    type: ClassVar[str] = "user.registered"
    source: ClassVar[str] = "users"

    user_id: int


class RegisterRequest(Contract):
    email: EmailStr = Field(max_length=254)
    password: str = Field(repr=False)
    name: str = Field(min_length=1, max_length=100)

    _password = field_validator("password")(_check_password)
    _name = field_validator("name")(_check_name)

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


class Credentials(Contract):
    email: Text = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX, repr=False)


class UserOut(Contract):
    id: int
    email: str
    name: str
    is_admin: bool = False
    created_at: UtcDatetime


class PublicUser(Contract):
    id: int
    name: str
