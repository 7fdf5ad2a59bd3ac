"""`make test` and pytest's exit 5 ("no tests collected"): a failure under CI only.

The Makefile's recipe runs against a stand-in venv whose ruff and mypy pass and whose
python exits as pytest would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def fake_venv(tmp_path: Path, pytest_exit: int) -> Path:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, code in (("ruff", 0), ("mypy", 0), ("python", pytest_exit)):
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\nexit {code}\n")
        tool.chmod(0o755)
    stamp = tmp_path / "venv" / ".installed"
    stamp.touch()
    os.utime(stamp, (4_000_000_000, 4_000_000_000))  # newer than pyproject.toml
    return tmp_path / "venv"


def make_test(venv: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MAKEFLAGS", "MAKELEVEL")}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "test", f"VENV={venv}",
         f"STAMP={venv}/.installed"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("ci", ["true", "1"])
def test_no_tests_collected_fails_under_ci(tmp_path: Path, ci: str) -> None:
    result = make_test(fake_venv(tmp_path, 5), ci)
    assert result.returncode != 0
    assert "collected no tests" in result.stdout


@pytest.mark.parametrize("ci", [None, "", "false"])
def test_no_tests_collected_is_only_reported_outside_ci(tmp_path: Path, ci: str | None) -> None:
    result = make_test(fake_venv(tmp_path, 5), ci)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "collected no tests" in result.stdout


def test_a_failing_suite_fails_everywhere(tmp_path: Path) -> None:
    assert make_test(fake_venv(tmp_path, 1), None).returncode != 0
