"""/api/products: browse the catalog (anyone); create, change, delete (administrators)."""

from __future__ import annotations

from flask import Blueprint, Response

from contracts.catalog import ProductCreate, ProductOut, ProductPage, ProductPatch, ProductQuery
from gateway.api import endpoint
from gateway.cache import cached_json, response_cache
from gateway.deps import services
from gateway.http import created

bp = Blueprint("products", __name__, url_prefix="/api/products")

KIND = "product"


@bp.get("")
@endpoint("A page of products", tag="products", query=ProductQuery, response=ProductPage)
def list_products(query: ProductQuery) -> ProductPage:
    """``?q=text&limit=1..100&offset=0..``: ``q`` matches name or description, any case."""
    return services().catalog.list_products(query)


@bp.get("/<id:product_id>")
@endpoint("One product (cached)", tag="products", response=ProductOut, cached=True)
def get_product(product_id: int) -> Response:
    """One product; cached for a few minutes (``X-Cache``)."""
    product, hit = response_cache().cached(
        KIND, product_id, ProductOut, lambda: services().catalog.get_product(product_id)
    )
    return cached_json(product, hit)


@bp.post("")
@endpoint(
    "Create a product",
    tag="products",
    auth="admin",
    status=201,
    body=ProductCreate,
    response=ProductOut,
)
def create_product(body: ProductCreate) -> Response:
    product = services().catalog.create_product(body)
    return created(product, "products.get_product", product_id=product.id)


@bp.patch("/<id:product_id>")
@endpoint(
    "Change the fields sent (at least one, none null)",
    tag="products",
    auth="admin",
    body=ProductPatch,
    response=ProductOut,
)
def update_product(product_id: int, body: ProductPatch) -> ProductOut:
    with response_cache().invalidating(KIND, product_id):
        return services().catalog.update_product(product_id, body)


@bp.delete("/<id:product_id>")
@endpoint("Delete a product", tag="products", auth="admin", status=204)
def delete_product(product_id: int) -> None:
    with response_cache().invalidating(KIND, product_id):
        services().catalog.delete_product(product_id)
