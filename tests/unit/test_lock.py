"""requirements.lock holds every dependency of pyproject.toml, pinned, each with its hashes.

``make install`` installs the lock with --require-hashes and then the project with --no-deps,
so a dependency added to pyproject.toml without ``make lock`` would simply be missing.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def locked() -> dict[str, tuple[Version, list[str]]]:
    """``{name: (version, hashes)}`` of requirements.lock."""
    pins: dict[str, tuple[Version, list[str]]] = {}
    name = ""
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if match := PIN.match(line):
            name = canonicalize_name(match[1])
            pins[name] = (Version(match[2]), [])
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
        if hashes:
            pins[name][1].extend(hashes)
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(text) for text in project["dependencies"] + extras["dev"]]


def test_every_declared_dependency_is_locked_at_a_version_it_allows() -> None:
    pins = locked()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: run make lock"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock has {name}=={version}, pyproject.toml wants "
            f"{requirement.specifier}: run make lock"
        )


def test_every_locked_package_has_a_hash() -> None:
    assert [name for name, (_, hashes) in locked().items() if not hashes] == []


def test_torch_is_the_cpu_build_and_nothing_of_cuda_is_locked() -> None:
    pins = locked()
    assert pins["torch"][0].local == "cpu"
    assert [n for n in pins if n.startswith(("nvidia", "triton"))] == []
