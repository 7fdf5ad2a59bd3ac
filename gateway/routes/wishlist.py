"""/api/wishlist: the caller's wishlist (PUT and DELETE are idempotent)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from flask_jwt_extended import jwt_required

from contracts.catalog import WishlistItem
from gateway.auth import current_user_id
from gateway.deps import rpc
from gateway.http import from_rpc
from gateway.schemas import WishlistList

bp = Blueprint("wishlist", __name__, url_prefix="/api/wishlist")


@bp.get("")
@jwt_required()
def list_mine() -> dict[str, Any]:
    items = rpc().call("catalog", "wishlist_list", current_user_id())
    return from_rpc(WishlistList, {"items": items}).model_dump(mode="json")


@bp.put("/<id:product_id>")
@jwt_required()
def add(product_id: int) -> dict[str, Any]:
    item = rpc().call("catalog", "wishlist_add", current_user_id(), product_id)
    return from_rpc(WishlistItem, item).model_dump(mode="json")


@bp.delete("/<id:product_id>")
@jwt_required()
def remove(product_id: int) -> Response:
    rpc().call("catalog", "wishlist_remove", current_user_id(), product_id)
    return Response(status=204)
