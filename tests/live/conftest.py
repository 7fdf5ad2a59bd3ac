"""Schemathesis over the live mesh: the e2e mesh (tests/e2e/conftest.py), started for this suite.

A plain ``pytest`` leaves it out (it runs thousands of requests against a mesh of its own);
``make faults`` runs it as ``pytest tests/live``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# Every fixture of the e2e suite: the mesh and what it needs.
from tests.e2e.conftest import *  # noqa: F403
from tests.faults.gate import ignored

HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return ignored(collection_path, config, HERE)
