"""What the orders logic needs from other services, and the adapters over their typed clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import eventlet

from contracts.catalog import CatalogApi, Reservation, ReserveRequest
from contracts.users import UsersApi


class Catalog(Protocol):
    def reserve(self, request: ReserveRequest) -> Reservation: ...
    def release(self, order_ref: str) -> bool: ...


class Users(Protocol):
    def confirm_later(self, user_id: int) -> Callable[[], None]:
        """Start checking that the user exists; calling the result raises NotFound if not."""
        ...


class CatalogStock:
    """Stock reservations through the catalog service; its errors arrive as themselves."""

    def __init__(self, catalog: CatalogApi) -> None:
        self.catalog = catalog

    def reserve(self, request: ReserveRequest) -> Reservation:
        return self.catalog.reserve_stock(request)

    def release(self, order_ref: str) -> bool:
        return self.catalog.release_stock(order_ref)


class UsersCheck:
    """Checks a user exists through the users service, while the caller works on."""

    def __init__(self, users: UsersApi) -> None:
        self.users = users

    def confirm_later(self, user_id: int) -> Callable[[], None]:
        pending = eventlet.spawn(self.users.get_user, user_id)

        def confirm() -> None:
            pending.wait()  # raises the service's NotFound, or TimeoutError

        return confirm
