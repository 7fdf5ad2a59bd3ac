"""No process of the mesh outlives it: a SIGKILLed Dramatiq master takes its workers along."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh import orphans
from tests.e2e.conftest import Mesh

pytestmark = pytest.mark.e2e


def stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of ``pid``, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    found = stat(pid)
    return found is not None and found[0] not in ("Z", "X")


def children(mesh: Mesh, parent: int) -> list[int]:
    return [
        p.pid
        for p in orphans.mesh_processes(mesh.var_dir)
        if (found := stat(p.pid)) is not None and found[1] == parent and alive(p.pid)
    ]


def workers_master(mesh: Mesh) -> int:
    return int(mesh.supervisorctl("pid", "workers").stdout.strip())


def test_workers_die_with_their_killed_master(mesh: Mesh) -> None:
    mesh.wait_running("workers")
    master = workers_master(mesh)
    workers = mesh.eventually(lambda: children(mesh, master), 30, what="the worker processes")

    mesh.supervisorctl("signal", "KILL", "workers")
    mesh.eventually(
        lambda: not any(alive(pid) for pid in workers),
        10,
        what=f"worker processes {workers} to die with their master {master}",
    )

    # supervisord starts a new master, whose workers run as before.
    mesh.wait_running("workers")
    new_master = workers_master(mesh)
    assert new_master != master
    assert mesh.eventually(lambda: children(mesh, new_master), 60, what="new worker processes")


def test_every_process_of_the_mesh_carries_its_marker(mesh: Mesh) -> None:
    """What `make stop` and the fixture's teardown reap is what supervisord started."""
    found = orphans.mesh_processes(mesh.var_dir)
    commands = " ".join(p.command for p in found)
    for program in ("nameko run", "dramatiq services.workers", "gunicorn", "mesh.mirror"):
        assert program in commands
