"""Small helpers shared by the gateway's unit tests."""

from __future__ import annotations

from typing import Any


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def calls(fake_rpc: Any, method: str) -> list[tuple[Any, ...]]:
    """The arguments of every call the fake RPC client received for ``method``."""
    return [call[2] for call in fake_rpc.calls if call[1] == method]


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert the one JSON error shape, ``{error, message, details?}``; return the body."""
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body
