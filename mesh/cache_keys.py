"""The gateway's response-cache keys, shared with the mirror, which invalidates them from events.

The gateway drops an entry after its own writes; a change made anywhere else (a cancel
released by the catalog's event handler, stock settled by its timer) reaches the cache
through the event it publishes.
"""

from __future__ import annotations

from typing import Any

VALUE_KEY = "gw:cache:{kind}:{key}"
GENERATION_KEY = "gw:cache-gen:{kind}:{key}"
TTLS = {"product": 300, "order": 300, "user": 600, "progress": 300}  # seconds, per kind

# event type -> (cache kind, the event fields naming the entry, joined by ":")
STALE_AFTER: dict[str, tuple[str, tuple[str, ...]]] = {
    "product.updated": ("product", ("product_id",)),
    "order.status_changed": ("order", ("order_id",)),
    "progress.updated": ("progress", ("course_id", "user_id")),
}


def value_key(kind: str, key: int | str) -> str:
    return VALUE_KEY.format(kind=kind, key=key)


def generation_key(kind: str, key: int | str) -> str:
    return GENERATION_KEY.format(kind=kind, key=key)


def stale_entry(event: dict[str, Any]) -> tuple[str, Any] | None:
    """The (kind, key) of the cache entry an event makes stale, if any."""
    rule = STALE_AFTER.get(str(event.get("type")))
    if rule is None:
        return None
    kind, fields = rule
    parts = [event.get(name) for name in fields]
    if any(part is None for part in parts):
        return None
    return kind, ":".join(str(part) for part in parts)
