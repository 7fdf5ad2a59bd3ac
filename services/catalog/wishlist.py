"""Wishlists: which live products a user keeps an eye on."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from contracts.catalog import WishlistItem, WishlistPage, WishlistQuery
from services.catalog.models import Product, WishlistEntry, utcnow
from services.catalog.products import live_product, product_out


def _item(entry: WishlistEntry, product: Product) -> WishlistItem:
    return WishlistItem(product=product_out(product), added_at=entry.added_at)


def _entry(session: Session, user_id: int, product_id: int) -> WishlistEntry | None:
    return session.scalar(
        select(WishlistEntry).where(
            WishlistEntry.user_id == user_id, WishlistEntry.product_id == product_id
        )
    )


def wishlist_list(sessions: sessionmaker, user_id: int, query: WishlistQuery) -> WishlistPage:
    """A page of the user's wishlist, newest first; deleted products are left out."""
    with sessions() as session:
        rows = session.execute(
            select(WishlistEntry, Product)
            .join(Product, Product.id == WishlistEntry.product_id)
            .where(WishlistEntry.user_id == user_id, Product.deleted_at.is_(None))
            .order_by(WishlistEntry.added_at.desc(), WishlistEntry.id.desc())
            .limit(query.limit + 1)  # one more tells whether a next page exists
            .offset(query.offset)
        ).all()
    more = len(rows) > query.limit
    return WishlistPage(
        items=[_item(entry, product) for entry, product in rows[: query.limit]],
        limit=query.limit,
        offset=query.offset,
        next_offset=query.offset + query.limit if more else None,
    )


def _add(sessions: sessionmaker, user_id: int, product_id: int) -> WishlistItem:
    with sessions() as session, session.begin():
        product = live_product(session, product_id)
        entry = _entry(session, user_id, product.id)
        if entry is None:
            entry = WishlistEntry(user_id=user_id, product_id=product.id, added_at=utcnow())
            session.add(entry)
    return _item(entry, product)


def wishlist_add(sessions: sessionmaker, user_id: int, product_id: int) -> WishlistItem:
    """Add a live product; adding it again returns the entry already there."""
    try:
        return _add(sessions, user_id, product_id)
    except IntegrityError:
        # A concurrent add of the same pair committed first: this pass finds its entry.
        return _add(sessions, user_id, product_id)


def wishlist_remove(sessions: sessionmaker, user_id: int, product_id: int) -> None:
    """Remove the pair if it is there; removing it again is not an error."""
    with sessions() as session, session.begin():
        session.execute(
            delete(WishlistEntry).where(
                WishlistEntry.user_id == user_id, WishlistEntry.product_id == product_id
            )
        )


def wishlisted_by(
    sessions: sessionmaker, product_id: int, after: int = 0, limit: int = 1000
) -> list[int]:
    """Ids above ``after`` of the users with this product on their wishlist (deleted products
    too), ascending, at most ``limit``: a fan-out pages through them by the last id seen."""
    with sessions() as session:
        return list(
            session.scalars(
                select(WishlistEntry.user_id)
                .where(WishlistEntry.product_id == product_id, WishlistEntry.user_id > after)
                .order_by(WishlistEntry.user_id)
                .limit(limit)
            )
        )
