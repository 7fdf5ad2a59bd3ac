"""What the orders logic needs from other services, and the adapters over their typed clients."""

from __future__ import annotations

import logging
from typing import Protocol

import eventlet

from contracts.catalog import CatalogApi, Reservation, ReserveRequest

log = logging.getLogger(__name__)


class Catalog(Protocol):
    def reserve(self, request: ReserveRequest) -> Reservation: ...
    def release(self, order_ref: str) -> bool: ...


class CatalogStock:
    """Stock reservations through the catalog service; its errors arrive as themselves.

    A release is waited for at most ``release_wait`` seconds (None: as long as the call
    takes). It is best-effort (the catalog's handler of order.status_changed is the
    guarantee), so a catalog that hangs must not hold a cancel past its own caller's timeout:
    the call goes on in the background, and the answer says nothing was released yet.
    """

    def __init__(self, catalog: CatalogApi, release_wait: float | None = None) -> None:
        self.catalog = catalog
        self.release_wait = release_wait

    def reserve(self, request: ReserveRequest) -> Reservation:
        return self.catalog.reserve_stock(request)

    def release(self, order_ref: str) -> bool:
        if self.release_wait is None:
            return self.catalog.release_stock(order_ref)
        pending = eventlet.spawn(self._release_logged, order_ref)
        with eventlet.Timeout(self.release_wait, False):
            return bool(pending.wait())
        log.warning("stock release still running", extra={"order_ref": order_ref})
        return False

    def _release_logged(self, order_ref: str) -> bool:
        try:
            return self.catalog.release_stock(order_ref)
        except Exception:
            log.exception("stock not released", extra={"order_ref": order_ref})
            return False
