"""Suites that a plain ``pytest`` leaves out: collected only when named on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest


def named(config: pytest.Config, folder: Path) -> bool:
    """True when a command-line path is ``folder``, or inside it."""
    root = config.invocation_params.dir
    for arg in config.args:
        path = (root / arg.split("::")[0]).resolve()
        if path == folder or folder in path.parents:
            return True
    return False


def ignored(collection_path: Path, config: pytest.Config, folder: Path) -> bool | None:
    """A ``pytest_ignore_collect`` answer: skip ``folder``'s files unless it was named."""
    if collection_path.parent == folder and not named(config, folder):
        return True
    return None
