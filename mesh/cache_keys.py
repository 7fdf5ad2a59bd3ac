"""The gateway's response-cache keys, shared with the mirror, which invalidates them from events.

The gateway drops an entry after its own writes; a change made anywhere else (a cancel
released by the catalog's event handler, stock settled by its timer) reaches the cache
through the event it publishes.
"""

from __future__ import annotations

from typing import Any

VALUE_KEY = "gw:cache:{kind}:{key}"
GENERATION_KEY = "gw:cache-gen:{kind}:{key}"
TTLS = {"product": 300, "order": 300, "user": 600}  # seconds, per kind

# event type -> (cache kind, the event field naming the entry)
STALE_AFTER = {
    "product.updated": ("product", "product_id"),
    "order.status_changed": ("order", "order_id"),
}


def value_key(kind: str, key: int | str) -> str:
    return VALUE_KEY.format(kind=kind, key=key)


def generation_key(kind: str, key: int | str) -> str:
    return GENERATION_KEY.format(kind=kind, key=key)


def stale_entry(event: dict[str, Any]) -> tuple[str, Any] | None:
    """The (kind, key) of the cache entry an event makes stale, if any."""
    rule = STALE_AFTER.get(str(event.get("type")))
    if rule is None or event.get(rule[1]) is None:
        return None
    return rule[0], event[rule[1]]
