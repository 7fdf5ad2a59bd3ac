"""Moved: each rule is stated by its contract, next to its validator (``contracts.base.Stated``).

Only these re-exports are left, for the modules that still import them from here
(``gateway/routes/orders.py``, ``tests/unit/test_gateway_schemathesis.py``): delete this module
once they import from ``contracts``.
"""

from __future__ import annotations

from contracts.base import NO_CONTROL_CHARACTERS
from contracts.users import NAME_FORMAT

__all__ = ["NAME_FORMAT", "NO_CONTROL_CHARACTERS"]
