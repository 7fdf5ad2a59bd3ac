"""What the orders logic needs from other services, and the RPC adapter that provides it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Catalog(Protocol):
    def reserve(self, payload: dict[str, Any]) -> dict[str, Any]: ...
    def release(self, order_ref: str) -> bool: ...


class Users(Protocol):
    def confirm_later(self, user_id: int) -> Callable[[], None]:
        """Start checking that the user exists; calling the result raises NotFound if not."""
        ...


class CatalogRpc:
    """The catalog service through a nameko RPC proxy; its MeshErrors arrive as themselves."""

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy

    def reserve(self, payload: dict[str, Any]) -> dict[str, Any]:
        return dict(self.proxy.reserve_stock(payload))

    def release(self, order_ref: str) -> bool:
        return bool(self.proxy.release_stock(order_ref))


class UsersRpc:
    """The users service through a nameko RPC proxy; the check runs while the caller works on."""

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy

    def confirm_later(self, user_id: int) -> Callable[[], None]:
        reply = self.proxy.get_user.call_async(user_id)

        def confirm() -> None:
            reply.result()  # raises the service's NotFound

        return confirm
