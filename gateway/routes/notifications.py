"""/api/notifications: the caller's notifications, newest first."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask_jwt_extended import jwt_required

from contracts.base import parse
from contracts.notifications import ListRequest
from gateway.auth import current_user_id
from gateway.deps import rpc
from gateway.http import from_rpc, query_int
from gateway.schemas import NotificationList

bp = Blueprint("notifications", __name__, url_prefix="/api")


@bp.get("/notifications")
@jwt_required()
def list_mine() -> dict[str, Any]:
    """``?limit=N``: 1..50, default 20."""
    fields: dict[str, Any] = {"user_id": current_user_id()}
    limit = query_int("limit")
    if limit is not None:
        fields["limit"] = limit
    query = parse(ListRequest, fields)
    items = rpc().call("notifications", "list_for_user", query.user_id, query.limit)
    return from_rpc(NotificationList, {"items": items}).model_dump(mode="json")
