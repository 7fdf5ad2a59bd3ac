"""What the orders logic needs from other services, and the RPC adapter that provides it."""

from __future__ import annotations

from typing import Any, Protocol


class Catalog(Protocol):
    def reserve(self, payload: dict[str, Any]) -> dict[str, Any]: ...
    def release(self, order_ref: str) -> bool: ...
    def get_product(self, product_id: int) -> dict[str, Any]: ...


class Users(Protocol):
    def get_user(self, user_id: int) -> dict[str, Any]: ...


class CatalogRpc:
    """The catalog service through a nameko RPC proxy; its MeshErrors arrive as themselves."""

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy

    def reserve(self, payload: dict[str, Any]) -> dict[str, Any]:
        return dict(self.proxy.reserve_stock(payload))

    def release(self, order_ref: str) -> bool:
        return bool(self.proxy.release_stock(order_ref))

    def get_product(self, product_id: int) -> dict[str, Any]:
        return dict(self.proxy.get_product(product_id))
