"""/api/wishlist: the caller's wishlist (PUT and DELETE are idempotent)."""

from __future__ import annotations

from flask import Blueprint

from contracts.catalog import WishlistItem, WishlistPage, WishlistQuery
from gateway.api import endpoint
from gateway.auth import current_user_id
from gateway.deps import services

bp = Blueprint("wishlist", __name__, url_prefix="/api/wishlist")


@bp.get("")
@endpoint(
    "The caller's wishlist, newest first, a page at a time",
    tag="wishlist",
    auth="access",
    query=WishlistQuery,
    response=WishlistPage,
)
def list_mine(query: WishlistQuery) -> WishlistPage:
    """A page of the wishlist (``limit`` up to 100, 50 by default); ``next_offset`` is the
    ``offset`` of the next page, null on the last."""
    return services().catalog.wishlist_list(current_user_id(), query)


@bp.put("/<id:product_id>")
@endpoint("Add a product (idempotent)", tag="wishlist", auth="access", response=WishlistItem)
def add(product_id: int) -> WishlistItem:
    return services().catalog.wishlist_add(current_user_id(), product_id)


@bp.delete("/<id:product_id>")
@endpoint("Remove a product (idempotent)", tag="wishlist", auth="access", status=204)
def remove(product_id: int) -> None:
    services().catalog.wishlist_remove(current_user_id(), product_id)
