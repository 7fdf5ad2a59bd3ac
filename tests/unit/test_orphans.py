"""mesh.orphans: a worker dies with its parent; `mesh reap` stops what outlived supervisord."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mesh import orphans

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")

# A parent that forks a child (which arms die_with_parent, or not) and reports its pid.
FORKER = """
import os, sys, time
from mesh import orphans
child = os.fork()
if child == 0:
    if sys.argv[1] == "arm":
        assert orphans.die_with_parent()
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
time.sleep(60)
"""


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def wait(check, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("arm", [True, False])
def test_a_child_dies_with_its_killed_parent_only_when_armed(arm: bool) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", FORKER, "arm" if arm else "no"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(0.3)  # let the child arm itself
    parent.kill()
    parent.wait(10)
    try:
        assert wait(lambda: gone(child), 3 if arm else 1) is arm
    finally:
        if not gone(child):
            os.kill(child, 9)


def test_reap_stops_only_the_marked_processes_even_when_they_ignore_sigterm(
    tmp_path: Path,
) -> None:
    stubborn = "trap '' TERM; sleep 60 & wait; sleep 60"
    env = {**os.environ, orphans.MARKER: str(tmp_path.resolve())}
    marked = subprocess.Popen(["sh", "-c", stubborn], env=env)
    other_env = {**os.environ, orphans.MARKER: str(tmp_path / "another-mesh")}
    other = subprocess.Popen(["sleep", "60"], env=other_env)
    try:
        assert wait(lambda: len(orphans.mesh_processes(tmp_path)) == 2)  # sh and its sleep
        found = orphans.reap(tmp_path, grace=0.5)
        assert marked.pid in {p.pid for p in found}
        assert "trap" in next(p.command for p in found if p.pid == marked.pid)
        assert marked.wait(5) == -9  # SIGTERM was ignored: SIGKILLed after the grace
        assert wait(lambda: orphans.mesh_processes(tmp_path) == [])
        assert other.poll() is None  # another mesh's process is left alone
    finally:
        other.kill()
        other.wait()
