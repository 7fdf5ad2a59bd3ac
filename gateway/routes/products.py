"""/api/products: browse the catalog (anyone); create, change, delete (administrators)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from contracts.base import parse
from contracts.catalog import ProductCreate, ProductOut, ProductPage, ProductPatch, ProductQuery
from gateway.auth import admin_required
from gateway.cache import cached_json, response_cache
from gateway.deps import rpc
from gateway.http import created, from_rpc, json_body, query_ints, refuse_nulls

bp = Blueprint("products", __name__, url_prefix="/api/products")

KIND = "product"


@bp.get("")
def list_products() -> dict[str, Any]:
    """``?q=text&limit=1..100&offset=0..``: a page of products."""
    fields: dict[str, Any] = query_ints("limit", "offset")
    q = request.args.get("q", "").strip()
    if q:
        fields["q"] = q
    query = parse(ProductQuery, fields)
    page = rpc().call("catalog", "list_products", query.model_dump(mode="json"))
    return from_rpc(ProductPage, page).model_dump(mode="json")


@bp.get("/<id:product_id>")
def get_product(product_id: int) -> Response:
    """One product; cached for a few minutes (``X-Cache``)."""

    def load() -> ProductOut:
        return from_rpc(ProductOut, rpc().call("catalog", "get_product", product_id))

    product, hit = response_cache().cached(KIND, product_id, ProductOut, load)
    return cached_json(product, hit)


@bp.post("")
@admin_required
def create_product() -> Response:
    payload = parse(ProductCreate, refuse_nulls(json_body()))
    answer = rpc().call("catalog", "create_product", payload.model_dump(mode="json"))
    product = from_rpc(ProductOut, answer)
    return created(product, "products.get_product", product_id=product.id)


@bp.patch("/<id:product_id>")
@admin_required
def update_product(product_id: int) -> dict[str, Any]:
    """Change the fields sent (at least one); the others stay as they are."""
    payload = parse(ProductPatch, refuse_nulls(json_body()))
    changes = payload.model_dump(mode="json", exclude_unset=True)
    with response_cache().invalidating(KIND, product_id):
        answer = rpc().call("catalog", "update_product", product_id, changes)
    return from_rpc(ProductOut, answer).model_dump(mode="json")


@bp.delete("/<id:product_id>")
@admin_required
def delete_product(product_id: int) -> Response:
    with response_cache().invalidating(KIND, product_id):
        rpc().call("catalog", "delete_product", product_id)
    return Response(status=204)
