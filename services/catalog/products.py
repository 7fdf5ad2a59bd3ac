"""Products: list, read, create, change and soft-delete; every change is a product.updated."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from contracts.base import is_id
from contracts.catalog import (
    FieldChange,
    ProductCreate,
    ProductOut,
    ProductPage,
    ProductPatch,
    ProductQuery,
    ProductUpdated,
)
from contracts.errors import NotFound
from mesh.outbox import EventSink
from mesh.sql import affected
from services.catalog.models import Product, utcnow

LIKE_ESCAPE = "/"


def product_out(product: Product) -> ProductOut:
    return ProductOut.model_validate(product, from_attributes=True)


def live_product(session: Session, product_id: Any, *, lock: bool = False) -> Product:
    """The product, unless the id is malformed, unknown or soft-deleted (NotFound)."""
    product = session.get(Product, product_id, with_for_update=lock) if is_id(product_id) else None
    if product is None or product.deleted_at is not None:
        raise NotFound("product not found")
    return product


def escape_like(text: str) -> str:
    """``text`` with LIKE's wildcards (and the escape character) taken literally."""
    for char in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(char, LIKE_ESCAPE + char)
    return text


def _filters(request: ProductQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Product.deleted_at.is_(None)]
    if request.q:
        pattern = f"%{escape_like(request.q)}%"
        where.append(
            or_(
                Product.name.ilike(pattern, escape=LIKE_ESCAPE),
                Product.description.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    return where


def list_products(sessions: sessionmaker, request: ProductQuery) -> ProductPage:
    """A page of live products ordered by id; ``q`` matches name or description, any case."""
    where = _filters(request)
    with sessions() as session:
        total = session.scalar(select(func.count()).select_from(Product).where(*where)) or 0
        products = session.scalars(
            select(Product)
            .where(*where)
            .order_by(Product.id)
            .limit(request.limit)
            .offset(request.offset)
        ).all()
    return ProductPage(
        items=[product_out(p) for p in products],
        total=total,
        limit=request.limit,
        offset=request.offset,
    )


def get_product(sessions: sessionmaker, product_id: int) -> ProductOut:
    with sessions() as session:
        return product_out(live_product(session, product_id))


def create_product(sessions: sessionmaker, events: EventSink, request: ProductCreate) -> ProductOut:
    """Store a product and its ``created`` event (every field, old None) in one transaction."""
    values = request.model_dump()
    with sessions() as session, session.begin():
        now = utcnow()
        product = Product(**values, created_at=now, updated_at=now)
        session.add(product)
        session.flush()
        changes = {field: FieldChange(old=None, new=new) for field, new in values.items()}
        events.add(
            session, ProductUpdated(product_id=product.id, change="created", changes=changes)
        )
    return product_out(product)


def _patch_values(patch: ProductPatch) -> dict[str, Any]:
    """The fields the patch gives (the contract has already refused explicit nulls)."""
    return {field: getattr(patch, field) for field in patch.model_fields_set}


def update_product(
    sessions: sessionmaker, events: EventSink, product_id: int, patch: ProductPatch
) -> ProductOut:
    """Apply a patch; only fields whose value really changes are written and announced."""
    values = _patch_values(patch)
    with sessions() as session, session.begin():
        product = live_product(session, product_id, lock=True)
        changes = {
            field: FieldChange(old=getattr(product, field), new=new)
            for field, new in values.items()
            if getattr(product, field) != new
        }
        if changes:
            for field, change in changes.items():
                setattr(product, field, change.new)
            product.updated_at = utcnow()
            events.add(
                session, ProductUpdated(product_id=product.id, change="updated", changes=changes)
            )
    return product_out(product)


def delete_product(sessions: sessionmaker, events: EventSink, product_id: int) -> None:
    """Soft-delete once: the conditional UPDATE lets exactly one caller win."""
    if not is_id(product_id):
        raise NotFound("product not found")
    with sessions() as session, session.begin():
        now = utcnow()
        deleted = affected(
            session,
            update(Product)
            .where(Product.id == product_id, Product.deleted_at.is_(None))
            .values(deleted_at=now, updated_at=now)
            .execution_options(synchronize_session=False),
        )
        if deleted != 1:
            raise NotFound("product not found")
        events.add(session, ProductUpdated(product_id=product_id, change="deleted"))
