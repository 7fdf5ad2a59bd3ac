"""The mesh's processes (supervisord's programs with their children, the broker, Redis) and
the CPU and memory each one uses, read from /proc."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Servers outside supervisord, found by their process name (/proc/<pid>/comm).
SERVERS = {"rabbitmq (beam.smp)": "beam.smp", "redis-server": "redis-server"}
TICKS = os.sysconf("SC_CLK_TCK")
# "orders  RUNNING  pid 12, ..." or, for a program's replicas, "orders:orders-0  RUNNING ..."
STATUS_LINE = re.compile(r"^(?:\S+:)?(\S+)\s+RUNNING\s+pid (\d+)", re.MULTILINE)
# supervisord.conf's [include] names a file after MESH_LAYOUT (the Makefile exports it).
LAYOUT = {"MESH_LAYOUT": "single", "MESH_REPLICAS": "1"}


def program_pids() -> dict[str, int]:
    """The pid supervisord holds for each running process (supervisorctl status): by program
    name, or ``orders-0``, ``orders-1``... for a program's replicas."""
    done = subprocess.run(
        [str(ROOT / ".venv/bin/supervisorctl"), "-c", str(ROOT / "supervisord.conf"), "status"],
        cwd=ROOT,
        env={**LAYOUT, **os.environ},
        capture_output=True,
        text=True,
        check=False,
    )
    return {name: int(pid) for name, pid in STATUS_LINE.findall(done.stdout)}


def tree(pid: int) -> list[int]:
    """``pid`` and every descendant (gunicorn's and dramatiq's workers)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(tree(int(child)))
    return found


def servers() -> dict[str, list[int]]:
    """The pids of each server of SERVERS that runs on this machine."""
    found: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        for label, name in SERVERS.items():
            if comm == name:
                found.setdefault(label, []).append(int(entry.name))
    return found


def mesh_processes() -> dict[str, list[int]]:
    """Every process of the mesh, by program (its whole tree), then the broker and Redis."""
    found = {name: tree(pid) for name, pid in program_pids().items()}
    return {**found, **servers()}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15


def cpu_times(processes: dict[str, list[int]]) -> dict[int, float]:
    """CPU seconds so far of every pid of :func:`mesh_processes`."""
    return {pid: cpu_seconds(pid) for pids in processes.values() for pid in pids}


def cpu_used(
    processes: dict[str, list[int]], before: dict[int, float], after: dict[int, float]
) -> dict[str, float]:
    """CPU seconds each entry took between two :func:`cpu_times` (a process gone since
    counts for nothing: its time is lost with it)."""
    return {
        name: sum(max(0.0, after.get(pid, 0.0) - before.get(pid, 0.0)) for pid in pids)
        for name, pids in processes.items()
    }


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory() -> dict[str, int]:
    """KiB resident per running program (its whole process tree)."""
    return {name: sum(rss_kib(p) for p in tree(pid)) for name, pid in program_pids().items()}
