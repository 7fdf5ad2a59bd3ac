"""The arrows run one way: gateway and services -> mesh -> contracts.

Read from the source with ``ast``, so an import hidden inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contracts", "mesh", "services", "gateway")
# package -> the packages of ours it must never import
FORBIDDEN = {
    "contracts": {"mesh", "services", "gateway"},
    "mesh": {"services", "gateway"},
    "services": {"gateway"},
    "gateway": {"services"},
}


def imported_packages(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports (absolute imports only)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        wrong = imported_packages(path) & FORBIDDEN[package]
        found += [f"{path.relative_to(ROOT)} imports {name}" for name in sorted(wrong)]
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_a_layer_imports_only_the_layers_below_it(package: str) -> None:
    assert violations(package) == []


def imported_services(path: Path) -> set[str]:
    """The service packages (``services.<name>``) that ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    modules = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ] + [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
    ]
    return {m.split(".")[1] for m in modules if m.startswith("services.") and m.count(".") >= 1}


def test_a_service_imports_no_other_service() -> None:
    """Each service owns its code and data; only the worker entry imports them all."""
    found = []
    for folder in sorted(p for p in (ROOT / "services").iterdir() if p.is_dir()):
        for path in sorted(folder.rglob("*.py")):
            others = imported_services(path) - {folder.name}
            found += [f"{path.relative_to(ROOT)} imports services.{o}" for o in sorted(others)]
    assert found == []


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from services.users import logic\n    import gateway.app\n")
    assert imported_packages(module) >= {"services", "gateway"}
