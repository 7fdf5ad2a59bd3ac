"""/api/wishlist: the caller's wishlist (PUT and DELETE are idempotent)."""

from __future__ import annotations

from flask import Blueprint

from contracts.catalog import WishlistItem
from gateway.api import endpoint
from gateway.auth import current_user_id
from gateway.deps import services
from gateway.schemas import WishlistList

bp = Blueprint("wishlist", __name__, url_prefix="/api/wishlist")


@bp.get("")
@endpoint(
    "The caller's wishlist, newest first", tag="wishlist", auth="access", response=WishlistList
)
def list_mine() -> WishlistList:
    return WishlistList(items=services().catalog.wishlist_list(current_user_id()))


@bp.put("/<id:product_id>")
@endpoint("Add a product (idempotent)", tag="wishlist", auth="access", response=WishlistItem)
def add(product_id: int) -> WishlistItem:
    return services().catalog.wishlist_add(current_user_id(), product_id)


@bp.delete("/<id:product_id>")
@endpoint("Remove a product (idempotent)", tag="wishlist", auth="access", status=204)
def remove(product_id: int) -> None:
    services().catalog.wishlist_remove(current_user_id(), product_id)
