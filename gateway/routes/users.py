"""/api/users: the caller's own profile."""

from __future__ import annotations

from flask import Blueprint
from flask_jwt_extended import jwt_required

from contracts.users import UserOut
from gateway.auth import current_user_id
from gateway.deps import rpc
from gateway.http import from_rpc

bp = Blueprint("users", __name__, url_prefix="/api/users")


@bp.get("/me")
@jwt_required()
def me() -> dict[str, object]:
    user = from_rpc(UserOut, rpc().call("users", "get_user", current_user_id()))
    return user.model_dump(mode="json")
