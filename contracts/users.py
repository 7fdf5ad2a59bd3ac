"""Users: the user.registered event and the users RPC payloads."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, ClassVar, Literal, Protocol

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import EmailStr, Field, StringConstraints, field_validator

from contracts.base import NO_CONTROL_CHARACTERS, Contract, Event, Id, Stated, Text, UtcDatetime

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


AT_MOST_THREE_DIFFERENT = r"^([\s\S])\1*(?:([\s\S])(?:\1|\2)*(?:([\s\S])(?:\1|\2|\3)*)?)?$"
"""A string made of at most 3 different characters (:func:`_check_password` refuses it)."""

PASSWORD_RULE = Stated(
    {
        "minLength": PASSWORD_MIN,
        "maxLength": PASSWORD_MAX,
        "not": {"pattern": AT_MOST_THREE_DIFFERENT},
        "description": f"{PASSWORD_MIN} to {PASSWORD_MAX} characters (once leading and trailing "
        "white space is dropped), at least 4 different ones; a common password is refused too.",
    }
)
""":func:`_check_password` as JSON Schema. The list of common passwords is only described: a
client cannot be expected to generate around it, and the list refuses a handful of strings."""


def _check_name(value: str) -> str:
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise ValueError("must not contain control characters")
    return re.sub(r"\s+", " ", value)


NAME_FORMAT = "x-name"
"""The format of an account's name: no character of Unicode's "other" categories (controls,
format characters, private use, unassigned: ``unicodedata.category`` starting with "C"), what
:func:`_check_name` refuses. A JSON Schema pattern of those categories would be exact but
thousands of ranges long, and slow for every generator (about 70 s more for schemathesis):
the pattern states the control characters only, and this format names the rest (a client, or
a test's generator, registers it)."""

NAME_RULE = Stated(
    {
        "format": NAME_FORMAT,
        "pattern": NO_CONTROL_CHARACTERS,
        "description": "No control, format, private-use or unassigned character "
        f"(format {NAME_FORMAT}); runs of white space become one space.",
    }
)
""":func:`_check_name` as JSON Schema (see :data:`NAME_FORMAT`)."""


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


EMAIL = r'^[^@\s"]+@[^@\s\[\]]+\.[^@\s.\[\]]+$'
"""An address as ``email-validator`` (``EmailStr``) takes it, in outline: no quoted local part,
a dotted domain name (no IP literal), no trailing dot..."""
SPECIAL_USE_DOMAIN = "[@.](?:{})$".format("|".join(map(_any_case, SPECIAL_USE_DOMAIN_NAMES)))
"""...and no special-use domain (``.test``, ``.local``...)."""

EmailAddress = Annotated[
    EmailStr, Stated({"pattern": EMAIL, "not": {"pattern": SPECIAL_USE_DOMAIN}})
]
"""An address ``email-validator`` accepts (``EmailStr``), its rules stated in outline (its
``format: email`` is wider than what it takes)."""


Email = Annotated[Text, StringConstraints(min_length=1, max_length=254)]


class UserRegistered(Event):
    """A user's row is committed. Carries the id only: read the rest from users."""

    type: ClassVar[str] = "user.registered"
    source: ClassVar[str] = "users"

    user_id: int


Role = Literal["student", "instructor"]
"""What a user registered as; administrators are made from the command line only."""


class RegisterRequest(Contract):
    email: EmailAddress = Field(max_length=254)
    password: Annotated[str, PASSWORD_RULE] = Field(repr=False)
    name: Annotated[str, NAME_RULE] = Field(min_length=1, max_length=100)
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


UserIds = Annotated[list[Id], Field(max_length=1000)]
"""Users looked up together (a notification fan-out's batch)."""


class UsersApi(Protocol):
    """The users service's RPC surface (service name ``users``)."""

    def register(self, request: RegisterRequest) -> UserOut:
        """Store a new user (Conflict if the e-mail is taken) and announce user.registered."""
        ...

    def authenticate(self, credentials: Credentials) -> UserOut:
        """The user for these credentials; AuthenticationFailed, the same for every reason."""
        ...

    def get_user(self, user_id: Id) -> UserOut: ...

    def get_users(self, user_ids: UserIds) -> list[UserOut]:
        """The users of these ids that exist, in the order asked (unknown ids left out)."""
        ...

    def promote_admin(self, email: Email) -> UserOut:
        """Make an existing user an administrator."""
        ...
